"""Write specc/lark_parser.py and specc/parser_tables.json again from grammar/specc.lark (after an
edit of the grammar, or with another lark).

python grammar/write_tables.py
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from specc import parser_tables  # noqa: E402

grammar = (ROOT / "grammar" / "specc.lark").read_text(encoding="utf-8")
parser_tables.RUNTIME.write_text(parser_tables.runtime(grammar), encoding="utf-8")
parser_tables.TABLES.write_text(parser_tables.serialize(grammar), encoding="utf-8")
print(f"wrote {parser_tables.RUNTIME} and {parser_tables.TABLES}")
