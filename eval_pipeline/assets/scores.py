"""The ``[suite, scores]`` asset: deterministic scorers over each model's generations."""

import dagster as dg
import pandas as pd

from eval_pipeline.assets.metadata import preview
from eval_pipeline.scoring.likelihood_scores import score_choices, score_texts
from eval_pipeline.scoring.registry import score_generations
from eval_pipeline.suites.spec import Suite


def build_scores_asset(suite: Suite, partitions: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    @dg.asset(key=[suite.suite, "scores"], group_name=suite.suite, partitions_def=partitions, kinds={"parquet"},
              ins={"samples": dg.AssetIn(key=[suite.suite, "samples"]),
                   "generations": dg.AssetIn(key=[suite.suite, "generations"])},
              description="One row per generation × scorer.")
    def scores(context: dg.AssetExecutionContext, samples: pd.DataFrame,
               generations: pd.DataFrame) -> dg.Output[pd.DataFrame]:
        if suite.task == "multiple_choice":
            frame = score_choices(samples, generations)
        elif suite.task == "perplexity":
            frame = score_texts(generations)
        else:
            frame = score_generations(samples, generations, list(suite.scorers))
        return dg.Output(frame, metadata={
            "errors": int(frame["error"].notna().sum()),
            "preview": preview(frame, ["sample_id", "sample_index", "scorer", "score", "error"]),
        })

    return scores
