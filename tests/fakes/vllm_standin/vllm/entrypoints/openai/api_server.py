"""Stands in for vLLM's OpenAI server at the process boundary: same module path and flags, serving the fake's
OpenAI wire protocol (GET /health, POST /v1/chat/completions) for the served model name. Prints its argv first."""

import argparse
import signal
import sys
import threading

from tests.fakes.llm_server import FakeLLMServer


def main() -> int:
    print("vllm stand-in argv:", " ".join(sys.argv[1:]), flush=True)
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--served-model-name")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--fail", action="store_true", help="exit at once, as a server that cannot load would")
    args, _ = parser.parse_known_args()
    if args.fail:
        print("ValueError: cannot load model", args.model, flush=True)
        return 1
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    with FakeLLMServer(host=args.host, port=args.port, known_models=[args.served_model_name or args.model]):
        done.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
