"""``rlenv list``, ``info``, ``check``, ``new`` and ``tour``: finding, inspecting, checking and
scaffolding environments."""

from __future__ import annotations

import argparse
import inspect
import json
import logging
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import rlenv
from rlenv.chat import Message
from rlenv.cli._common import (
    EXIT_FAILED,
    EXIT_OK,
    CLIError,
    Output,
    add_env_id,
    add_env_kwargs,
    env_kwargs,
    env_warnings,
    format_step,
    format_table,
    format_verdict,
    isatty,
    make_env,
    turns,
)
from rlenv.env import Action, TextEnv
from rlenv.errors import RLEnvError
from rlenv.registry import entry_point_name, env_creator


def register(commands: Any) -> None:
    list_ = commands.add_parser("list", help="list registered environments")
    list_.add_argument("--namespace", help="only ids in this namespace (e.g. rlenv)")
    list_.set_defaults(handler=_cmd_list)

    info = commands.add_parser("info", help="an environment's spec, parameters and a sample task")
    add_env_id(info)
    info.add_argument("--seed", type=int, default=0, help="seed of the sample task (0)")
    add_env_kwargs(info)
    info.set_defaults(handler=_cmd_info)

    check = commands.add_parser("check", help="run the conformance suite (rlenv.testing)")
    check.add_argument(
        "env_ids", nargs="*", metavar="ID",
        help="environment ids to check, or running services: http://host:port/NS/Name-v0 (one "
        "env of an `rlenv serve` server), http://host:port (all it serves)",
    )  # fmt: skip
    check.add_argument(
        "--url", metavar="URL",
        help="check the IDs (all it serves when none) on the rlenv server at URL, over the wire",
    )  # fmt: skip
    check.add_argument(
        "--json", metavar="PATH", help="also write the reports as JSON (for CI): per env, each "
        "check's name, status and detail; 'passed' overall",
    )  # fmt: skip
    check.add_argument("--all", action="store_true", help="check every registered environment")
    check.add_argument(
        "--no-cross-process",
        action="store_true",
        help="skip the determinism check in a fresh Python process",
    )
    check.add_argument(
        "--actions", type=int, default=200, metavar="N", help="hostile actions to step (200)"
    )
    check.add_argument(
        "--verbose", action="store_true", help="print the tracebacks of environment errors"
    )
    check.set_defaults(handler=_cmd_check)

    new = commands.add_parser("new", help="scaffold an environment package")
    new.add_argument("name", help="package name: lowercase letters, digits, '_' or '-'")
    new.add_argument("--dir", default=".", help="where to create NAME/ (default: .)")
    kind = new.add_mutually_exclusive_group()
    kind.add_argument(
        "--multi-turn", action="store_true", help="a multi-turn environment (respond/Turn)"
    )
    kind.add_argument(
        "--tools", action="store_true", help="a multi-turn tool-calling environment (ToolEnv)"
    )
    new.set_defaults(handler=_cmd_new)

    tour = commands.add_parser("tour", help="list the environments and play scripted episodes")
    tour.set_defaults(handler=_cmd_tour)


# ------------------------------------------------------------------------------ list, info


def _docstring(creator: Any) -> str:
    """The creator's own docstring (a class does not inherit ``TextEnv``'s), cleaned up."""
    doc = getattr(creator, "__doc__", None)
    return inspect.cleandoc(doc) if isinstance(doc, str) else ""


def _summary_row(env_id: str) -> tuple[str, str, str]:
    env_spec = rlenv.spec(env_id)
    try:
        creator = env_creator(env_spec)
    except Exception as error:  # a broken plugin must not hide every other environment
        return env_id, "?", f"(cannot be imported: {type(error).__name__}: {error})"
    max_turns = (env_spec.kwargs or {}).get("max_turns", getattr(creator, "max_turns", "?"))
    first_line = _docstring(creator).split("\n", 1)[0].replace("``", "`")
    return env_id, str(max_turns), first_line


def print_env_table(out: Output, namespace: str | None = None) -> int:
    env_ids = rlenv.list_envs(namespace)
    if not env_ids:
        where = f" in namespace {namespace!r}" if namespace else ""
        out.line(f"no environments registered{where}")
        return 0
    rows = [_summary_row(env_id) for env_id in env_ids]
    lines = format_table(("id", "max_turns", "description"), rows)
    limit = shutil.get_terminal_size().columns if isatty(out.stream) else None
    out.line(out.style(lines[0], "bold"))
    for line in lines[1:]:
        out.line(line if limit is None or len(line) <= limit else line[: limit - 3] + "...")
    return len(env_ids)


def _cmd_list(args: argparse.Namespace) -> int:
    print_env_table(Output(sys.stdout), args.namespace)
    return EXIT_OK


def _parameter_rows(env_id: str, defaults: dict[str, Any]) -> list[tuple[str, str]]:
    parameters = rlenv.registry.env_parameters(env_id) or {}
    rows = []
    for name, parameter in parameters.items():
        if name in ("tasks", "render_mode"):
            continue
        annotation = parameter.annotation
        kind = getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")
        default = defaults.get(name, parameter.default)
        shown = "" if default is inspect.Parameter.empty else f" = {default!r}"
        rows.append((f"  -k {name}", f"{kind}{shown}"))
    return rows


def _cmd_info(args: argparse.Namespace) -> int:
    kwargs = env_kwargs(args)
    env_spec = rlenv.spec(args.env_id)
    env = make_env(args.env_id, kwargs)
    out = Output(sys.stdout)
    observation, info = env.reset(seed=args.seed)
    tools = info["tools"]  # after reset: some envs offer each task its own tools
    fields = [
        ("entry point", entry_point_name(env_spec.entry_point)),
        ("kwargs", json.dumps({**(env_spec.kwargs or {}), **kwargs}, default=repr)),
        ("max_turns", str(env.max_turns)),
        ("max_reward", str(env.max_reward)),
        ("tools", f"{len(tools)}: {', '.join(_tool_names(tools))}" if tools else "0"),
    ]
    out.line(out.style(args.env_id, "bold"))
    for line in format_table(("", ""), fields)[1:]:
        out.line("  " + line)
    rows = _parameter_rows(args.env_id, {**(env_spec.kwargs or {}), **kwargs})
    if rows:
        out.line()
        out.line("parameters (-k KEY=VALUE on the command line, keywords to rlenv.make):")
        for line in format_table(("", ""), rows)[1:]:
            out.line(line)
    doc = _docstring(type(env))
    if doc:
        out.line()
        out.line(doc)
    out.line()
    out.line(out.style(f"sample task (seed {args.seed}): id {info['task_id']}", "bold"))
    out.messages(observation)
    out.line()
    out.line(f"reference answer: {env.task.answer!r}")
    gold = env.gold_action()
    if gold is not None:
        out.line(f"gold action: {gold if isinstance(gold, str) else json.dumps(gold)}")
    out.line(
        f"replay this task: env.reset(options={{'task_id': {info['task_id']!r}}}) "
        f"(or reset(seed={args.seed}))"
    )
    env.close()
    return EXIT_OK


def _tool_names(tools: list[Any]) -> list[str]:
    names = []
    for schema in tools:
        function = schema.get("function", schema) if isinstance(schema, dict) else {}
        names.append(str(function.get("name", "?")))
    return names


# ------------------------------------------------------------------------------ check, new


def _cmd_check(args: argparse.Namespace) -> int:
    if args.url:
        if args.all:
            raise CLIError("--url checks what that server serves; --all what is installed here")
        if any("://" in env_id for env_id in args.env_ids):
            raise CLIError("give IDs with --url, or URLs without it")
        base = args.url.rstrip("/")
        targets = [f"{base}/{env_id}" for env_id in args.env_ids] or [base]
    elif args.all == bool(args.env_ids):
        raise CLIError("give environment ids to check, or --all (not both); or service URLs")
    else:
        targets = rlenv.list_envs() if args.all else list(args.env_ids)
    if args.actions < 0:
        raise CLIError(f"--actions must be at least 0, got {args.actions}")
    for target in targets:  # a typo fails fast, before any check runs
        if "://" not in target:
            rlenv.spec(target)
            continue
        from rlenv.testing import check_schemes

        scheme = target.split("://", 1)[0].lower()
        if scheme not in check_schemes():
            known = ", ".join(f"{name}://" for name in check_schemes())
            raise CLIError(f"{target}: no checker for {scheme}:// services (known: {known}; "
                           "rlenv.testing.register_check_scheme adds one)")  # fmt: skip
    reports: list[dict[str, Any]] = []
    for target in targets:
        reports += _check_target(
            target,
            cross_process=not args.no_cross_process,
            actions=args.actions,
            verbose=args.verbose,
        )
    failed = [report["env"] for report in reports if not report["passed"]]
    if len(reports) > 1:
        print(f"checked {len(reports)} environments: {len(reports) - len(failed)} passed", end="")
        print(f", {len(failed)} failed: {', '.join(failed)}" if failed else "")
    if args.json:
        document = {"rlenv": rlenv.__version__, "passed": not failed, "environments": reports}
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
        print(f"report: {path}")
    return EXIT_FAILED if failed else EXIT_OK


def _check_target(
    target: str, *, cross_process: bool, actions: int, verbose: bool = False
) -> list[dict[str, Any]]:
    """Check an installed env id, or every env a service URL names; print each report and
    return them as JSON data (an env that cannot be made or reached: one failed check)."""
    from rlenv.registry import make as registry_make
    from rlenv.testing import check_env, check_targets

    def failure(name: str, what: str, error: Exception) -> dict[str, Any]:
        print(f"conformance of {name}:\n  FAIL  {what}: {type(error).__name__}: {error}")
        print(f"{name}: FAILED (it could not be {'made' if what == 'make' else 'reached'})\n")
        detail = f"{type(error).__name__}: {error}"
        return {"env": name, "passed": False,
                "checks": [{"name": what, "status": "fail", "detail": detail}]}  # fmt: skip

    if "://" not in target:
        runs = [(target, lambda: registry_make(target), {"cross_process": cross_process})]
    else:
        try:
            runs = [(name, make, {"fresh": make, "name": name})
                    for name, make in check_targets(target)]  # fmt: skip
        except RLEnvError as error:
            return [failure(target, "reach", error)]
    reports = []
    for name, make, options in runs:
        with env_warnings(show=verbose) as records:
            try:
                env = make()
            except Exception as error:  # the environment cannot even be made
                reports.append(failure(name, "make", error))
                continue
            try:
                report = check_env(env, raise_on_failure=False, n_actions=actions, **options)
            finally:
                env.close()
        print(report)
        if records and not verbose:
            print(_warnings_summary(records))
        print()
        reports.append(report.to_dict())
    return reports


def _warnings_summary(records: list[logging.LogRecord]) -> str:
    """One line per distinct warning, with its count and the exception's last line."""
    counts: dict[str, int] = {}
    for record in records:
        text = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            text += f": {type(error).__name__}: {str(error)[:200]}"
        counts[text] = counts.get(text, 0) + 1
    lines = [f"  the environment logged {len(records)} warning(s) (tracebacks: --verbose):"]
    lines += [f"    {count}x {text}" for text, count in counts.items()]
    return "\n".join(lines)


def _cmd_new(args: argparse.Namespace) -> int:
    from rlenv.scaffold import InvalidNameError, ScaffoldError, env_id_for, scaffold

    try:
        package = scaffold(args.name, Path(args.dir), multi_turn=args.multi_turn, tools=args.tools)
    except InvalidNameError:
        raise
    except ScaffoldError as error:
        print(f"rlenv: error: {error}", file=sys.stderr)
        return EXIT_FAILED
    env_id = env_id_for(args.name)
    print(f"created {package}/")
    for path in sorted(p for p in package.rglob("*") if p.is_file()):
        print(f"  {path.relative_to(package)}")
    print("\nnext steps:")
    print(f"  cd {package}")
    print("  pip install -e .")
    print(f"  rlenv check {env_id}")
    print(f"  rlenv play {env_id}")
    print("  python -m pytest tests")
    return EXIT_OK


# ------------------------------------------------------------------------------ tour


def play_scripted(
    out: Output, env: TextEnv, seed: int, policy: Callable[[list[Message]], Action]
) -> float:
    """Play one episode with ``policy`` and print each turn; return the total reward."""
    observation, info = env.reset(seed=seed)
    out.messages(observation)
    total, verdict = 0.0, None
    while True:
        observation, reward, terminated, truncated, info = env.step(policy(observation))
        out.messages(info["new_messages"])
        out.line(out.style(format_step(reward, terminated, truncated), "dim"))
        total += reward
        verdict = info["verdict"]
        if terminated or truncated:
            break
        out.line()
    out.line(out.style(f"final {format_verdict(verdict)}", "bold"))
    out.line(out.style(f"total reward {total} in {turns(env)}", "bold"))
    return total


def _cmd_tour(args: argparse.Namespace) -> int:
    from rlenv.envs.games.guess_number import binary_search_guess

    out = Output(sys.stdout)
    out.line(out.style("== registered environments (rlenv list)", "bold"))
    print_env_table(out)

    out.line()
    out.line(out.style("== rlenv/GuessNumber-v0, seed 0, a binary-search policy", "bold"))
    guess_number = rlenv.make("rlenv/GuessNumber-v0")
    play_scripted(out, guess_number, seed=0, policy=binary_search_guess)

    out.line()
    out.line(out.style("== rlenv/Arithmetic-v0, seed 0, submitting env.gold_action()", "bold"))
    arithmetic = rlenv.make("rlenv/Arithmetic-v0")
    play_scripted(out, arithmetic, seed=0, policy=lambda _: arithmetic.gold_action())
    return EXIT_OK
