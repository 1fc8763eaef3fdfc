"""Tool-call parsing: rlenv's parsers on real model outputs, next to a peer where one is installed.

Every case of the public tool-call corpus (``tests/tools/data/public/calls_*.jsonl``, format in
SCHEMA.md beside it, read by ``benchmarks/tool_calls_corpus.py``) is parsed by:

- rlenv's parser named by the case's ``format`` (``get_parser(format).parse(text, tools=...)``,
  the schemas passed when the case has them and the parser takes them); a format whose parser is
  not registered is reported as such, not scored;
- rlenv's ``auto`` parser, the same way;
- a peer, where one is installed: verifiers 0.3.1 (``.venv-peers``, ``make peers``) has no
  tool-call parser, only ``XMLParser``; what its legacy tool environments did with it is
  ``XMLParser(["tool_call"]).parse(text).tool_call`` then ``json.loads`` of the block: at most
  one call, Hermes layout only. It is run on the ``hermes`` cases; other formats have no peer
  here (vLLM and SGLang do not install on this machine).

A case passes when the calls (names and argument values, compared as JSON with ``10 == 10.0``)
and the number of malformed calls are exactly its label (:func:`tool_calls_corpus.outcome`).
Figures are given on the dev and held-out splits apart; failures are listed by case id with a
one-line reason. The text of a held-out case is never printed nor written to ``--json``.

The peer half runs this script with ``--peer-half IN OUT`` under ``.venv-peers/bin/python`` (its
pins stay out of rlenv's environment); without that interpreter the peer column is left out.

Usage::

    make bench-tools
    python benchmarks/tool_calls.py [--no-peers] [--json PATH] [--format mistral]
"""

from __future__ import annotations

import argparse
import inspect
import json
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import tool_calls_corpus as corpus  # the folder above is not a package: found through sys.path

ROOT = corpus.ROOT
PEERS_VENV_PYTHON = ROOT / ".venv-peers" / "bin" / "python"
PEER_FORMATS = {"hermes": "verifiers"}
"""The formats a peer is run on, and the peer's name."""

Result = tuple[list[tuple[str, Any]], int]  # (calls as (name, arguments), number of errors)


# --- rlenv's half ------------------------------------------------------------------------------


def registered_parsers() -> list[str]:
    """The parser names rlenv registers now."""
    from rlenv.tools.parsers import list_parsers

    return list(list_parsers())


def run_rlenv(parser_name: str, case: Mapping[str, Any]) -> Result:
    """Parse one case with rlenv's parser ``parser_name``; the tools' schemas go to parsers whose
    ``parse`` takes them."""
    from rlenv.tools.parsers import get_parser

    parser = get_parser(parser_name)
    tools = case.get("tools")
    if tools and "tools" in inspect.signature(parser.parse).parameters:
        turn = parser.parse(case["text"], tools=tools)
    else:
        turn = parser.parse(case["text"])
    return [(call.name, call.arguments) for call in turn.calls], len(turn.errors)


def score_rlenv(cases: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, str]]:
    """``{"named": {id: outcome}, "auto": {id: outcome}}``; a case whose format has no
    registered parser gets no entry under ``named``."""
    names = set(registered_parsers())
    scores: dict[str, dict[str, str]] = {"named": {}, "auto": {}}
    for case in cases:
        if case["format"] in names:
            scores["named"][case["id"]] = corpus.outcome(case, *run_rlenv(case["format"], case))
        scores["auto"][case["id"]] = corpus.outcome(case, *run_rlenv("auto", case))
    return scores


# --- the peer's half (runs under .venv-peers, no rlenv there) ----------------------------------


def run_verifiers(case: Mapping[str, Any]) -> Result:
    """verifiers 0.3.1's ``XMLParser(["tool_call"])``, then ``json.loads`` of the block."""
    from verifiers.legacy.parsers.xml_parser import XMLParser

    block = XMLParser(["tool_call"]).parse(case["text"]).tool_call
    if block is None:
        return [], 0
    try:
        data = json.loads(block)
        return [(data["name"], data.get("arguments", {}))], 0
    except (ValueError, KeyError, TypeError):
        return [], 1


PEERS = {"verifiers": run_verifiers}


def peer_half(cases_path: Path, out_path: Path) -> None:
    """Score the cases written to ``cases_path`` with each peer; write the outcomes out."""
    cases = json.loads(cases_path.read_text(encoding="utf-8"))
    outcomes: dict[str, str] = {}
    for case in cases:
        peer = PEERS[PEER_FORMATS[case["format"]]]
        try:
            outcomes[case["id"]] = corpus.outcome(case, *peer(case))
        except Exception as error:  # a peer that raises counts as a miss
            outcomes[case["id"]] = f"peer raised {type(error).__name__}"
    out_path.write_text(json.dumps(outcomes), encoding="utf-8")


def score_peers(cases: Sequence[Mapping[str, Any]], python: Path) -> dict[str, str] | None:
    """Run the peer half under ``python``; ``None`` when it is not there or fails."""
    if not python.exists():
        return None
    chosen = [dict(c) for c in cases if c["format"] in PEER_FORMATS]
    with tempfile.TemporaryDirectory() as tmp:
        cases_path, out_path = Path(tmp) / "cases.json", Path(tmp) / "out.json"
        cases_path.write_text(json.dumps(chosen), encoding="utf-8")
        done = subprocess.run(
            [str(python), __file__, "--peer-half", str(cases_path), str(out_path)],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0 or not out_path.exists():
            print(f"peer half failed ({done.returncode}); peer column left out", file=sys.stderr)
            return None
        return json.loads(out_path.read_text(encoding="utf-8"))


# --- report ------------------------------------------------------------------------------------


def _rate(outcomes: Mapping[str, str], ids: Sequence[str]) -> str:
    scored = [outcomes[i] for i in ids if i in outcomes]
    if not scored:
        return "-"
    passed = sum(o == "pass" for o in scored)
    return f"{100 * passed / len(scored):5.1f}% ({passed}/{len(scored)})"


def report(cases, scores, peers) -> dict[str, Any]:
    """Print the per-format table and the failures; return the same as a dict for ``--json``."""
    columns = [("rlenv", scores["named"]), ("auto", scores["auto"])]
    if peers is not None:
        columns.append(("peer", peers))
    header = f"{'format':14s} {'dev':>4s} {'held':>4s}"
    for label, _ in columns:
        header += f" | {label + ' dev':>16s} {label + ' held-out':>16s}"
    print(header)
    print("-" * len(header))
    table: dict[str, Any] = {}
    for fmt in corpus.FORMATS:
        dev = [c["id"] for c in corpus.select(cases, split="dev", format=fmt)]
        held = [c["id"] for c in corpus.select(cases, split="held_out", format=fmt)]
        if not dev and not held:
            continue
        row = f"{fmt:14s} {len(dev):4d} {len(held):4d}"
        table[fmt] = {"dev": len(dev), "held_out": len(held)}
        for label, outcomes in columns:
            row += f" | {_rate(outcomes, dev):>16s} {_rate(outcomes, held):>16s}"
            table[fmt][label] = {"dev": _rate(outcomes, dev), "held_out": _rate(outcomes, held)}
        print(row)
    unregistered = sorted({c["format"] for c in cases if c["id"] not in scores["named"]})
    if unregistered:
        print(f"\nnot registered in rlenv (not scored): {', '.join(unregistered)}")
    failures: dict[str, list[dict[str, str]]] = {}
    for label, outcomes in columns:
        misses = [
            {"id": c["id"], "split": c["split"], "reason": outcomes[c["id"]]}
            for c in cases
            if c["id"] in outcomes and outcomes[c["id"]] != "pass"
        ]
        failures[label] = misses
        print(f"\n{label}: {len(misses)} failing case(s)")
        for miss in misses:
            print(f"  {miss['id']} [{miss['split']}]: {miss['reason']}")
    return {"table": table, "failures": failures, "unregistered": unregistered}


def main(argv: Sequence[str] | None = None) -> int:
    args = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    args.add_argument(
        "--peer-half", nargs=2, type=Path, metavar=("IN", "OUT"), help=argparse.SUPPRESS
    )
    args.add_argument("--no-peers", action="store_true", help="rlenv's columns only")
    args.add_argument(
        "--peers-python",
        type=Path,
        default=PEERS_VENV_PYTHON,
        help="interpreter of the peers' virtual environment (.venv-peers)",
    )
    args.add_argument("--format", help="only the cases of this format")
    args.add_argument("--json", type=Path, help="write the table and failures (ids, reasons)")
    opts = args.parse_args(argv)
    if opts.peer_half:
        peer_half(*opts.peer_half)
        return 0
    cases = corpus.load_corpus()
    if opts.format:
        cases = corpus.select(cases, format=opts.format)
    scores = score_rlenv(cases)
    peers = None if opts.no_peers else score_peers(cases, opts.peers_python)
    result = report(cases, scores, peers)
    if opts.json:
        opts.json.write_text(json.dumps(result, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
