"""bedrock.hcl: read Bedrock's pipeline file, check it, and turn it into a `Spec`.

The file is HCL 1 as Basis AI's Bedrock wrote it (`research/bedrock.md` §1-§3). It is read with
python-hcl2; files that use HCL 1 forms it rejects (a block inside a list,
`script = [{spark-submit { … }}]`; shell text such as `${PORT:-8080}` in strings) are read with
pyhcl, the parser Bedrock itself used. pyhcl also reads files whose strings hold `\\n`, `\\t` or
`\\u` escapes, or heredocs: python-hcl2 resolves those, while Bedrock passed them to bash as
written. Both parsers' output goes through one normaliser, so a file yields the same `Spec`
whichever parser read it. Strings are never interpolated: `${X}` reaches bash unchanged.

Neither parser reports where a key was written, so a small tokenizer of our own (`locate`) maps
every key path to its line and column in the source text, the same for both parsers.
knows fewer positions.

Decisions on the legacy forms found in real files (the corpus in `../shared/bedrock-hcl-corpus`):

- No `version`: a warning; the file is read as version "1.0". `Spec.version` is None.
- `version = "1.1"` (one real file, reverted upstream the next day): a warning, read as "1.0".
  Any other version is an error.
- A stanza holding image/install/script directly (2019) is one step named after the stanza.
- `script = ["python3 train.py"]` (2019): a warning; each string runs as a shell command.
- `gpu = 1`, `cpu = 2`, `limit = "1"`, numeric parameters: coerced, no warning.
- `parameters`/`secrets` inside a step: a warning; merged into the stanza's, which every step of
  the stanza sees (a stanza-level value wins over a step-level one).
- `secrets { NAME = "" }`: a warning; the keys are the secret names, the values are ignored.
- `features { }` and `spark { }`: a warning; ignored.
- Unknown keys anywhere: a warning naming the key, never silently dropped.
- A key set twice in one block, or a stanza written twice: an error (the parsers disagree on
  what it means).

The package, in reading order:

- `model`: the typed spec (`Spec`, `Stanza`, `Step`, `Resources`) and `Problem`/`SpecError`.
- `limits`: how much one file may ask for, and the linear scan run before any parser.
- `parse`: `load`, `load_file` and `check`; choosing and running the parsers.
- `syntax`: each parser's syntax error as a message, and the more helpful of the two.
- `locate`: key paths to lines and columns, for every message.
- `report`: the problems collected while normalising, and the shape checks of values.
- `normalise`: the parsers' output to a `Spec`: the top level, stanzas, parameters, secrets.
- `steps`, `resources`: step blocks, and their resources and retries against the limits.
- `graph`: dependencies checked, every cycle reported, steps put in order (`graphlib`).
"""

from __future__ import annotations

from bedrock.pipelines.spec.model import (
    PIPELINE_STANZAS,
    STANZAS,
    STEP_NAME_MAX_LENGTH,
    STEP_NAME_PATTERN,
    SUPPORTED_VERSION,
    TOLERATED_VERSIONS,
    Problem,
    Resources,
    Spec,
    SpecError,
    Stanza,
    Step,
)
from bedrock.pipelines.spec.parse import check, load, load_file
from bedrock.pipelines.spec.steps import MAX_COMMAND_BYTES

__all__ = [
    "MAX_COMMAND_BYTES",
    "PIPELINE_STANZAS",
    "STANZAS",
    "STEP_NAME_MAX_LENGTH",
    "STEP_NAME_PATTERN",
    "SUPPORTED_VERSION",
    "TOLERATED_VERSIONS",
    "Problem",
    "Resources",
    "Spec",
    "SpecError",
    "Stanza",
    "Step",
    "check",
    "load",
    "load_file",
]
