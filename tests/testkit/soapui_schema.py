"""The SoapUI project `tidbok collection --format soapui` writes, checked against SoapUI's own schema.

soapui.xsd (SmartBear/soapui, soapui/src/main/xsd/soapui/soapui.xsd: the schema of the XMLBeans
classes SoapUI 5 reads projects with) is SmartBear's, under the EUPL, so it is not shipped and this
check is not part of the suite (which checks the project's structure: tests/testkit/test_collections.py).
Run it by hand with a copy of the schema:

    .venv/bin/python tests/testkit/soapui_schema.py path/to/soapui.xsd

It writes the project, validates it and prints each error (exit 1), or "valid" (exit 0).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import xmlschema

REPO = Path(__file__).resolve().parents[2]


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as folder:
        project = Path(folder) / "tidbok-soapui-project.xml"
        command = [sys.executable, "-m", "producer", "collection", "--format", "soapui", str(project)]
        subprocess.run(command, cwd=REPO, check=True, capture_output=True)
        errors = list(xmlschema.XMLSchema10(argv[0]).iter_errors(str(project)))
    for error in errors:
        print(f"{error.path}: {error.reason}")
    print("valid" if not errors else f"{len(errors)} error(s)")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
