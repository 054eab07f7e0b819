#!/usr/bin/env python3
"""Doxygen INPUT_FILTER for core/include/filelock.h.

Doxygen's preprocessor does not re-scan the X-macro FL_ERROR_TABLE with the
macro passed as its argument, so the FL_E* enumerators would not exist in
the documentation. This filter writes them out, each with its description
from the table, in place of `FL_ERROR_TABLE(FL__ERROR_ENUM)`, on the same
line, so that line numbers in warnings stay right. Other files pass through.
"""

import re
import sys

ROW = re.compile(r'X\((\w+),\s*(-?\d+),\s*"([^"]*)"\)')


def main() -> int:
    with open(sys.argv[1], encoding="utf-8") as f:
        text = f.read()
    table = re.search(r"#define FL_ERROR_TABLE\(X\)(.*?)(?<!\\)\n", text, re.S)
    if table:
        rows = ROW.findall(table.group(1))
        if not rows:
            sys.exit(f"{sys.argv[1]}: FL_ERROR_TABLE has no rows this filter understands")
        enumerators = " ".join(f"FL_{name} = {value}, /**< {desc} */" for name, value, desc in rows)
        text = text.replace("FL_ERROR_TABLE(FL__ERROR_ENUM)", enumerators)
        # The end marker is not an error code: keep it out of the docs.
        text = re.sub(r"\bFL__ERROR_END = -?\d+", "", text)
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
