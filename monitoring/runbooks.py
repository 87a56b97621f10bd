"""Point every alert's ``runbook_url`` in alert_rules.yml at ``<base>#<alertname in lower
case>``: the runbooks (docs/runbooks.md, one heading per alert) published wherever you keep
them. Standard library only, so it runs on a Prometheus host without voxmon installed.

    python3 monitoring/runbooks.py --base https://wiki.example.com/voxmon/runbooks \\
        > /etc/prometheus/rules/voxmon.yml
    python3 monitoring/runbooks.py --write      # the shipped file, with DEFAULT_BASE
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

DEFAULT_BASE = "https://github.com/voxmon/voxmon/blob/main/docs/runbooks.md"
"""Where the shipped alert_rules.yml points: docs/runbooks.md in voxmon's repository."""
RULES = Path(__file__).resolve().parent.parent / "alert_rules.yml"
_ALERT = re.compile(r"^\s+- alert: (\S+)\s*$")
_RUNBOOK = re.compile(r"^(\s+runbook_url: ).*$")


def runbook_url(base: str, alert: str) -> str:
    """The runbook of one alert: its heading's anchor (GitHub and most Markdown renderers
    make ``## VoxmonDown`` the anchor ``#voxmondown``)."""
    return f"{base.rstrip('#')}#{alert.lower()}"


def render(text: str, base: str) -> str:
    """``text`` (a rules file) with each alert's ``runbook_url`` line rebuilt from ``base``;
    every other line is kept as it is. Raises ValueError for a runbook_url outside an
    alert or an alert without one."""
    out, alert, missing = [], None, []
    for line in text.splitlines(keepends=True):
        if match := _ALERT.match(line):
            if alert is not None:
                missing.append(alert)
            alert = match[1]
        elif match := _RUNBOOK.match(line):
            if alert is None:
                raise ValueError(f"runbook_url outside an alert: {line.strip()}")
            line, alert = f"{match[1]}{runbook_url(base, alert)}\n", None
        out.append(line)
    missing += [alert] if alert is not None else []
    if missing:
        raise ValueError(f"alerts without a runbook_url annotation: {', '.join(missing)}")
    return "".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default=DEFAULT_BASE, help="runbook page URL, no anchor")
    parser.add_argument("--rules", type=Path, default=RULES, help="rules file to read")
    parser.add_argument("--write", action="store_true", help="rewrite --rules in place")
    args = parser.parse_args(argv)
    try:
        text = render(args.rules.read_text(encoding="utf-8"), args.base)
    except (OSError, ValueError) as exc:
        print(f"runbooks: {exc}", file=sys.stderr)
        return 2
    if args.write:
        args.rules.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
