"""AgentCore and Lambda agents through the real boto3 clients against wire-protocol fakes on 127.0.0.1."""

from __future__ import annotations

import hashlib
import itertools

import pytest

from eval_pipeline.agents.agentcore import AGENTCORE, AgentCoreAgent
from eval_pipeline.agents.environment import AgentTask, AgentTurn
from eval_pipeline.agents.lambda_agent import LAMBDA, LambdaAgent
from eval_pipeline.data.messages import ChatMessage
from eval_pipeline.inference.remote import RetryPolicy
from tests.fakes.agentcore import AgentCoreFake, Reply
from tests.fakes.lambda_fake import LambdaFake

ARN = "arn:aws:bedrock-agentcore:us-west-2:123456789012:runtime/my_agent-AbC123xyz9"
TASK = AgentTask(task_id="t-1", prompt="add 2 and 3", data={"answer": 5})


class Sleeps:
    """An injected sleep that records the pauses instead of taking them."""

    def __init__(self) -> None:
        self.pauses: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.pauses.append(seconds)


def expected_session(rollout_id: str) -> str:
    return "eval-pipeline-rollout-" + hashlib.sha256(rollout_id.encode()).hexdigest()


def converse(agent: AgentCoreAgent | LambdaAgent, rollout_id: str, user_lines: list[str]) -> list[AgentTurn]:
    """A rollout: each user line after the agent's previous reply, as the rollout loop would send them."""
    agent.start(TASK, rollout_id)
    conversation = [ChatMessage(role="system", content="be brief")]
    turns = []
    for line in user_lines:
        conversation.append(ChatMessage(role="user", content=line))
        turn = agent.act(conversation, [])
        turns.append(turn)
        if turn.message is not None:
            conversation.append(turn.message)
    agent.finish()
    return turns


def agentcore_agent(sleeps: Sleeps | None = None, **config: object) -> AgentCoreAgent:
    return AGENTCORE.build({"arn": ARN, **config}, sleep=sleeps or Sleeps())


def lambda_agent(sleeps: Sleeps | None = None, **config: object) -> LambdaAgent:
    return LAMBDA.build({"function": "my-agent-fn", "region": "us-east-1", **config}, sleep=sleeps or Sleeps())


# --- AgentCore -------------------------------------------------------------------------------------------------

def test_agentcore_session_kept_across_turns_and_distinct_across_rollouts(agentcore: AgentCoreFake) -> None:
    agent = agentcore_agent(qualifier="PROD")
    first = converse(agent, "suite/t-1/model-a/0", ["hello", "again", "bye"])
    second = converse(agent, "suite/t-1/model-a/1", ["hello"])

    sessions = agentcore.service.session_ids()
    assert sessions[:3] == [expected_session("suite/t-1/model-a/0")] * 3
    assert sessions[3] == expected_session("suite/t-1/model-a/1") != sessions[0]
    assert all(33 <= len(session) <= 256 for session in sessions)
    # the runtime kept the conversation: its turn counter ran 1, 2, 3 in the first session and restarted
    assert [t.message.content for t in first] == ["turn 1: hello", "turn 2: again", "turn 3: bye"]
    assert second[0].message.content == "turn 1: hello"
    invocations = agentcore.service.invocations
    assert {inv.target for inv in invocations} == {ARN} and {inv.qualifier for inv in invocations} == {"PROD"}
    assert invocations[1].payload == {"prompt": "again", "task_id": "t-1", "session_id": sessions[0], "turn": 2,
                                      "task": {"answer": 5}}
    assert agentcore.stopped == [(ARN, "PROD", sessions[0]), (ARN, "PROD", sessions[3])]


def test_agentcore_sends_only_the_messages_since_its_last_reply(agentcore: AgentCoreFake) -> None:
    agent = agentcore_agent()
    agent.start(TASK, "r")
    conversation = [ChatMessage(role="system", content="sys"), ChatMessage(role="user", content="a")]
    reply = agent.act(conversation, []).message
    conversation += [reply, ChatMessage(role="user", content="b"),
                     ChatMessage(role="tool", content="42", tool_call_id="c1")]
    agent.act(conversation, [])
    assert [inv.payload["prompt"] for inv in agentcore.service.invocations] == ["a", "b\n\n42"]


def test_agentcore_sse_body_is_joined_with_reward_and_done(agentcore: AgentCoreFake) -> None:
    agentcore.agent = lambda inv: Reply(["The answer ", {"text": "is "}, {"response": "5"},
                                         {"reward": 1.0, "done": True}], kind="sse")
    turn = converse(agentcore_agent(), "r", ["what is 2+3?"])[0]
    assert turn.error is None
    assert turn.message.content == "The answer is 5"
    assert (turn.reward, turn.done) == (1.0, True)


@pytest.mark.parametrize(("reply", "text", "reward", "done"), [
    ({"response": "hi", "reward": 0.5, "done": False}, "hi", 0.5, False),
    ({"result": "r"}, "r", None, None),
    ({"output": "o", "done": True}, "o", None, True),
    ("a JSON string", "a JSON string", None, None),
    (Reply("plain words", kind="text"), "plain words", None, None),
])
def test_agentcore_json_and_text_bodies(agentcore: AgentCoreFake, reply: object, text: str,
                                        reward: float | None, done: bool | None) -> None:
    agentcore.agent = lambda inv: reply
    turn = converse(agentcore_agent(), "r", ["q"])[0]
    assert (turn.message.content, turn.reward, turn.done, turn.error) == (text, reward, done, None)


def test_agentcore_in_stream_error_is_an_error_not_a_reply(agentcore: AgentCoreFake) -> None:
    agentcore.agent = lambda inv: Reply(["partial ", {"error": "tool crashed", "error_type": "KeyError",
                                                      "message": "An error occurred during streaming"}], kind="sse")
    turn = converse(agentcore_agent(), "r", ["q"])[0]
    assert turn.message is None
    assert "tool crashed" in turn.error and "KeyError" in turn.error
    assert len(agentcore.service.attempts) == 1  # an answered error is not retried


def test_agentcore_throttling_is_retried_then_succeeds(agentcore: AgentCoreFake) -> None:
    agentcore.service.fail_next("throttle", "throttle", "internal")
    sleeps = Sleeps()
    turn = converse(agentcore_agent(sleeps), "r", ["q"])[0]
    assert turn.error is None and turn.message.content == "turn 1: q"
    assert len(agentcore.service.attempts) == 4 and len(agentcore.service.invocations) == 1
    assert len(sleeps.pauses) == 3
    assert all(0 <= pause <= 1.0 * 2 ** i for i, pause in enumerate(sleeps.pauses))  # full jitter, base 1 s
    # the retries kept the session: every attempt carried the rollout's id
    assert {a["session_id"] for a in agentcore.service.attempts} == {expected_session("r")}


def test_agentcore_permanent_failures_become_errors(agentcore: AgentCoreFake) -> None:
    agentcore.service.fail_always("validation")
    turn = converse(agentcore_agent(), "r", ["q"])[0]
    assert turn.message is None and "ValidationException" in turn.error
    assert len(agentcore.service.attempts) == 1

    agentcore.service.fail_always("throttle")
    sleeps = Sleeps()
    turn = converse(agentcore_agent(sleeps, max_attempts=3), "r2", ["q"])[0]
    assert turn.message is None and "gave up after 3 attempts" in turn.error
    assert len(agentcore.service.attempts) == 1 + 3 and len(sleeps.pauses) == 2


def test_agentcore_crashed_agent_is_an_error(agentcore: AgentCoreFake) -> None:
    def crash(inv: object) -> object:
        raise RuntimeError("out of memory")

    agentcore.agent = crash
    turn = converse(agentcore_agent(), "r", ["q"])[0]
    assert turn.message is None and "RuntimeClientError" in turn.error and "out of memory" in turn.error


def test_agentcore_stop_session_failure_does_not_raise(agentcore: AgentCoreFake) -> None:
    agentcore.fail_stop = True
    turns = converse(agentcore_agent(), "r", ["q"])
    assert turns[0].error is None and agentcore.stopped == []


def test_latency_comes_from_the_injected_clock(agentcore: AgentCoreFake) -> None:
    ticks = itertools.count(start=100.0, step=2.5)
    agent = AGENTCORE.build({"arn": ARN}, sleep=Sleeps(), clock=lambda: next(ticks))
    turn = converse(agent, "r", ["q"])[0]
    assert turn.latency_s == 2.5


# --- Lambda ----------------------------------------------------------------------------------------------------

def test_lambda_session_in_payload_across_turns_and_rollouts(lambda_fake: LambdaFake) -> None:
    agent = lambda_agent()
    turns = converse(agent, "rollout-A", ["one", "two", "three"])
    converse(agent, "rollout-B", ["one"])
    sessions = lambda_fake.service.session_ids()
    assert sessions == [expected_session("rollout-A")] * 3 + [expected_session("rollout-B")]
    assert [t.message.content for t in turns] == ["turn 1: one", "turn 2: two", "turn 3: three"]
    assert [inv.payload["turn"] for inv in lambda_fake.service.invocations] == [1, 2, 3, 1]
    assert {inv.target for inv in lambda_fake.service.invocations} == {"my-agent-fn"}


def test_lambda_function_error_is_an_error_row_with_its_message(lambda_fake: LambdaFake) -> None:
    def handler(inv: object) -> object:
        raise ValueError("the tool table is missing")

    lambda_fake.handler = handler
    turn = converse(lambda_agent(), "r", ["q"])[0]
    assert turn.message is None
    assert turn.error == "lambda my-agent-fn: ValueError: the tool table is missing"
    assert len(lambda_fake.service.attempts) == 1


def test_lambda_throttling_is_retried_then_succeeds(lambda_fake: LambdaFake) -> None:
    lambda_fake.service.fail_next("too_many_requests", "too_many_requests", "service")
    sleeps = Sleeps()
    turn = converse(lambda_agent(sleeps), "r", ["q"])[0]
    assert turn.error is None and turn.message.content == "turn 1: q"
    assert len(lambda_fake.service.attempts) == 4 and len(sleeps.pauses) == 3


def test_lambda_permanent_failure_is_an_error(lambda_fake: LambdaFake) -> None:
    lambda_fake.service.fail_always("not_found")
    turn = converse(lambda_agent(), "r", ["q"])[0]
    assert turn.message is None and "ResourceNotFoundException" in turn.error
    assert len(lambda_fake.service.attempts) == 1


def test_lambda_reply_with_reward_and_arn_target(lambda_fake: LambdaFake) -> None:
    lambda_fake.handler = lambda inv: {"output": "done!", "reward": 0.25, "done": True}
    arn = "arn:aws:lambda:us-east-1:123456789012:function:my-agent-fn:prod"
    agent = LAMBDA.build({"function": arn}, sleep=Sleeps())
    turn = converse(agent, "r", ["q"])[0]
    assert (turn.message.content, turn.reward, turn.done) == ("done!", 0.25, True)
    assert lambda_fake.service.invocations[0].target == arn


def test_retry_policy_default_is_bounded() -> None:
    agent = AGENTCORE.build({"arn": ARN, "max_attempts": 2})
    assert agent.retry == RetryPolicy(max_attempts=2, base_delay_s=1.0, max_delay_s=30.0)


# --- concurrency and the fakes' own surface ----------------------------------------------------------------------

def test_concurrent_rollouts_keep_their_own_sessions(agentcore: AgentCoreFake) -> None:
    """Eight rollouts at once (one agent each, one shared client): each session sees exactly its three turns."""
    from concurrent.futures import ThreadPoolExecutor

    rollout_ids = [f"suite/t-{i}/m/0" for i in range(8)]

    def run(rollout_id: str) -> list[str]:
        turns = converse(agentcore_agent(), rollout_id, [f"{rollout_id} a", f"{rollout_id} b", f"{rollout_id} c"])
        return [turn.message.content for turn in turns]

    with ThreadPoolExecutor(max_workers=8) as pool:
        replies = dict(zip(rollout_ids, pool.map(run, rollout_ids), strict=True))
    for rollout_id, texts in replies.items():
        assert texts == [f"turn {n}: {rollout_id} {x}" for n, x in zip((1, 2, 3), "abc", strict=True)]
    assert dict(agentcore.service.per_session) == {expected_session(r): 3 for r in rollout_ids}


def test_fake_stats_route_and_cli() -> None:
    import json
    import subprocess
    import sys
    import urllib.request

    from tests.conftest import REPO

    process = subprocess.Popen([sys.executable, "-m", "tests.fakes.lambda_fake", "--port", "0"], cwd=REPO,
                               stdout=subprocess.PIPE, text=True)
    try:
        url = process.stdout.readline().strip()
        request = urllib.request.Request(f"{url}/2015-03-31/functions/f/invocations", method="POST",
                                         data=json.dumps({"prompt": "x", "session_id": "s"}).encode())
        with urllib.request.urlopen(request, timeout=10) as response:
            assert json.loads(response.read()) == {"response": "turn 1: x"}
        with urllib.request.urlopen(f"{url}/_fake/stats", timeout=10) as response:
            assert json.loads(response.read()) == {"attempts": 1, "invocations": 1, "per_session": {"s": 1}}
    finally:
        process.terminate()
        process.wait(timeout=10)
