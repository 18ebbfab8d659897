"""``python -m flaxify.lint PATH...``: the lint command alone, without loading the other commands."""

from __future__ import annotations

import sys

from flaxify.commands.lint import lint


def main() -> None:
    sys.exit(lint.main(prog_name="flaxify lint"))


if __name__ == "__main__":
    main()
