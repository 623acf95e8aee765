#!/usr/bin/env bash
# docs/protocol.md covers proto/tpc.proto: every message, every field of every message
# and every enum value of the schema is named in the specification (a field or value
# added to the schema without its description fails here).
set -euo pipefail
SRC=$(cd "$(dirname "$0")/../.." && pwd)
python3 - "$SRC/proto/tpc.proto" "$SRC/docs/protocol.md" <<'PY'
import re, sys
proto = re.sub(r'//[^\n]*', '', open(sys.argv[1]).read())
doc = open(sys.argv[2]).read()
missing = []
def named(word):
    return re.search(r'(?<![A-Za-z0-9_])' + re.escape(word) + r'(?![A-Za-z0-9_])', doc)
for kind, name, body in re.findall(r'\b(message|enum)\s+(\w+)\s*\{(.*?)\n\}', proto, re.S):
    if not named(name):
        missing.append(f"{kind} {name}")
    if kind == "enum":
        items = re.findall(r'^\s*(\w+)\s*=', body, re.M)
    else:
        items = re.findall(r'^\s*(?:repeated\s+)?[\w.]+\s+(\w+)\s*=\s*\d+', body, re.M)
    if name == "Envelope":  # the body oneof: each case is a message named above
        items = ["request_id"]
    missing += [f"{name}.{i}" for i in items if not named(i)]
if missing:
    sys.exit("docs/protocol.md does not describe: " + ", ".join(missing))
print("check-protocol-doc: docs/protocol.md names every message, field and enum value "
      "of tpc.proto")
PY
