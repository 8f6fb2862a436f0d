"""Write specc/lark_parser.py again from grammar/specc.lark (after an edit of the grammar, or another lark).

python grammar/write_tables.py
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from specc import parser_tables  # noqa: E402

parser_tables.GENERATED.write_text(parser_tables.generate((ROOT / "grammar" / "specc.lark").read_text(encoding="utf-8")), encoding="utf-8")
print(f"wrote {parser_tables.GENERATED}")
