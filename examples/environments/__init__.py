"""Example agent environments, each a ``ToolEnvironment`` small enough for the embedded 135M model to solve sometimes:

- ``calculator:CalculatorEnvironment``: arithmetic with a ``calculate`` tool; reward 1 when the expected number
  appears in the final reply (``examples/data/agents/calculator.jsonl``).
- ``kv_lookup:KeyValueEnvironment``: a key-value store with a ``get`` tool; reward 1 when the asked value appears in
  the final reply (``examples/data/agents/kv_lookup.jsonl``).
- ``retail_db:RetailEnvironment``: a small shop database with order tools; reward = database end state equal to the
  gold actions' end state (τ²-bench's DB reward) × every required phrase said (``examples/data/agents/retail.jsonl``).
"""
