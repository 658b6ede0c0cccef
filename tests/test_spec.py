"""bedrock.hcl parsing: the real corpus, broken inputs with their positions, and the semantics."""

from __future__ import annotations

import dataclasses
import textwrap
from pathlib import Path

import hcl2
import pytest

from bedrock.pipelines import spec
from bedrock.pipelines.spec import Problem, Resources, SpecError, Step, parse

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "bedrock-hcl-corpus"
CORPUS_FILES = sorted(CORPUS.glob("*.hcl")) if CORPUS.is_dir() else []
ABSENT = f"{CORPUS} is absent: ../shared (the shared test data) is not checked out beside the repo"
# The corpus files python-hcl2 8.1 reads; the other 14 use HCL 1 forms only pyhcl accepts.
BOTH_PARSERS = {
    "08", "10", "11", "12", "14", "15", "16", "17", "18", "19",
    "20", "21", "22", "23", "25", "30", "31", "32", "33", "34",
}  # fmt: skip


def corpus_params() -> list:
    if not CORPUS_FILES:
        return [pytest.param(None, id="corpus-absent", marks=pytest.mark.skip(reason=ABSENT))]
    return [pytest.param(path, id=path.stem) for path in CORPUS_FILES]


def corpus(number: str) -> Path:
    if not CORPUS_FILES:
        pytest.skip(ABSENT)
    return next(path for path in CORPUS_FILES if path.name.startswith(f"{number}-"))


def hcl(text: str) -> str:
    """Test HCL written indented in the test; line 1 is the first line after the quotes.

    `@STEP@` stands for the body of a valid step.
    """
    return textwrap.dedent(text.replace("@STEP@", STEP_OK)).lstrip("\n")


def errors_of(text: str) -> list[Problem]:
    return [problem for problem in spec.check(text) if problem.is_error]


def warnings_of(text: str) -> list[Problem]:
    return [problem for problem in spec.check(text) if not problem.is_error]


# --------------------------------------------------------------------------------------------
# The real files


@pytest.mark.parametrize("path", corpus_params())
def test_every_corpus_file_loads_without_errors(path: Path) -> None:
    loaded = spec.load_file(path)

    assert loaded.stanzas, f"{path.name} yielded no stanzas"
    for stanza in loaded.stanzas.values():
        assert stanza.steps
        for step in stanza.steps:
            assert step.image
            assert step.command()


def assert_manifest_lists(directory: Path, files: list[Path], count: int) -> None:
    if not files:
        pytest.skip(f"{directory} is absent: ../shared is not checked out beside the repo")
    manifest = (directory / "MANIFEST.md").read_text(encoding="utf-8")

    assert len(files) == count
    assert all(path.name in manifest for path in files)


def test_the_corpus_holds_the_34_files_its_manifest_lists() -> None:
    assert_manifest_lists(CORPUS, CORPUS_FILES, 34)


MORE = CORPUS.parent / "bedrock-hcl-corpus-more"
MORE_FILES = sorted(MORE.glob("*.hcl")) if MORE.is_dir() else []
MORE_ABSENT = ABSENT.replace(str(CORPUS), str(MORE))


def expected_errors() -> dict[str, tuple[int, int]]:
    """The broken files of the second corpus, each with the line and column of its fault."""
    rows = (MORE / "expected-errors.tsv").read_text(encoding="utf-8").splitlines()[1:]
    places = {}
    for row in rows:
        name, place, _why = row.split("\t")
        line, column = place.split(":")
        places[name] = (int(line), int(column))
    return places


def more_params(*, broken: bool) -> list:
    if not MORE_FILES:
        return [pytest.param(None, id="corpus-absent", marks=pytest.mark.skip(reason=MORE_ABSENT))]
    faulty = expected_errors()
    chosen = [path for path in MORE_FILES if (path.name in faulty) == broken]
    return [pytest.param(path, id=path.stem) for path in chosen]


@pytest.mark.parametrize("path", more_params(broken=False))
def test_every_file_of_the_second_corpus_but_the_broken_ones_loads(path: Path) -> None:
    loaded = spec.load_file(path)

    assert loaded.stanzas, f"{path.name} yielded no stanzas"
    for stanza in loaded.stanzas.values():
        for step in stanza.steps:
            assert step.image, f"{path.name}: {stanza.name}.{step.name} has no image"
            assert step.command(), f"{path.name}: {stanza.name}.{step.name} has no command"


@pytest.mark.parametrize("path", more_params(broken=True))
def test_a_broken_file_of_the_second_corpus_fails_at_the_place_its_authors_left_the_fault(
    path: Path,
) -> None:
    with pytest.raises(SpecError) as raised:
        spec.load_file(path)

    places = [(p.line, p.column) for p in raised.value.problems if p.is_error]
    assert expected_errors()[path.name] in places, places


def test_the_second_corpus_holds_105_files_eight_of_them_broken() -> None:
    assert_manifest_lists(MORE, MORE_FILES, 105)
    assert len(expected_errors()) == 8
    assert set(expected_errors()) <= {path.name for path in MORE_FILES}


def test_python_hcl2_reads_exactly_the_twenty_corpus_files_without_hcl1_forms() -> None:
    if not CORPUS_FILES:
        pytest.skip(ABSENT)
    readable = set()
    for path in CORPUS_FILES:
        try:
            hcl2.loads(path.read_text(encoding="utf-8"))
        except Exception:  # noqa: S112 - any parser failure means "not readable" here
            continue
        readable.add(path.name[:2])

    assert readable == BOTH_PARSERS


@pytest.mark.parametrize("path", corpus_params())
def test_both_parsers_yield_the_same_spec_for_a_corpus_file(path: Path) -> None:
    if path.name[:2] not in BOTH_PARSERS:
        pytest.skip("python-hcl2 rejects this file's HCL 1 forms; only pyhcl reads it")
    text = path.read_text(encoding="utf-8")

    by_hcl2 = parse.load_with(text, parser="hcl2")
    by_pyhcl = parse.load_with(text, parser="pyhcl")

    assert by_hcl2.parser == "hcl2"
    assert by_pyhcl.parser == "pyhcl"
    assert by_hcl2 == dataclasses.replace(by_pyhcl, parser="hcl2")


def test_a_file_with_hcl1_script_blocks_is_read_by_pyhcl() -> None:
    assert spec.load_file(corpus("02")).parser == "pyhcl"
    assert spec.load_file(corpus("08")).parser == "hcl2"


@pytest.mark.parametrize("number", ["13", "24", "26", "29"])
def test_shell_defaults_in_strings_reach_bash_unchanged(number: str) -> None:
    serve = spec.load_file(corpus(number)).stanza("serve")

    assert serve is not None
    assert "--bind=:${BEDROCK_SERVER_PORT:-8080}" in serve.steps[0].command()
    assert "--workers=${WORKERS}" in serve.steps[0].command()


def test_interpolation_syntax_is_kept_verbatim_by_both_parsers() -> None:
    text = corpus("18").read_text(encoding="utf-8")

    for parser in ("hcl2", "pyhcl"):
        serve = parse.load_with(text, parser=parser).stanza("serve")
        assert serve is not None
        assert serve.steps[0].script[0].endswith("--server.port ${BEDROCK_SERVER_PORT}")


def test_crlf_line_endings_and_a_byte_order_mark_change_nothing() -> None:
    text = corpus("08").read_text(encoding="utf-8")

    assert spec.load("\ufeff" + text.replace("\n", "\r\n")) == spec.load(text)


# --------------------------------------------------------------------------------------------
# Broken inputs: the message, the key path, the line and the column

# A valid step body, indented to sit inside the indented test texts below.
STEP_OK = """
            image = "python:3.11"
            script = [{sh = ["python train.py"]}]
        """

BROKEN = [
    pytest.param(
        """
        version = "1.0"
        train {
          step "a" {
            image = = "x"
          }
        }
        """,
        "",
        (4, 13),
        "syntax error: unexpected '='; expected a value",
        id="syntax-double-equals",
    ),
    pytest.param(
        """
        version = "1.0"
        train {
          step "a" {
            image = "x"
            script = [{sh = ["a"]}]
        }
        """,
        "",
        (7, 1),
        "the file ends too early: the { at line 2, column 7 is never closed",
        id="syntax-missing-closing-brace",
    ),
    pytest.param(
        """
        version = "1.0"
        train {
          step "a" {
            image = "x
            script = [{sh = ["a"]}]
          }
        }
        """,
        "",
        (4, 13),
        'a string runs past the end of its line: is its closing " missing?',
        id="syntax-unterminated-string",
    ),
    pytest.param(
        """
        version = "1.0"
        train {
          step "a" {
            image = "x"
            script = [{sh = ["a"]}]
            resources {
              memory = 1G
            }
          }
        }
        """,
        "train.step.a.resources.memory",
        (7, 16),
        'syntax error: 1G must be quoted: memory = "1G"',
        id="syntax-unquoted-quantity",
    ),
    pytest.param(
        """
        version = "1.0"
        train {
          step "a" {
            image = "x"
            script = [{spark-submit {
              script = "a.py"
            }}]
          }
          parameters {
            ALPHA = = "1"
          }
        }
        """,
        "",
        (10, 13),
        "syntax error: unexpected '='",
        id="syntax-error-after-an-hcl1-block-is-pyhcls",
    ),
    pytest.param(
        "",
        "",
        (None, None),
        "the file is empty",
        id="empty-file",
    ),
    pytest.param(
        """
        // only a comment
        version = "1.0"
        """,
        "",
        (None, None),
        "no train, batch_score or serve stanza",
        id="no-stanza",
    ),
    pytest.param(
        """
        version = "2.0"
        train {
          step "a" {@STEP@}
        }
        """,
        "version",
        (1, 11),
        'unsupported version "2.0": this Bedrock reads version "1.0"',
        id="unsupported-version",
    ),
    pytest.param(
        """
        version = ["1.0"]
        serve {@STEP@}
        """,
        "version",
        (1, 11),
        'version must be the string "1.0"; found a list',
        id="version-not-a-string",
    ),
    pytest.param(
        """
        version = "1.0"
        train {
          step "a" {@STEP@}
          step a {@STEP@}
        }
        """,
        "train.step.a",
        (7, 8),
        "duplicate step name 'a' (first at line 3)",
        id="duplicate-step-names",
    ),
    pytest.param(
        """
        version = "1.0"
        train {
          step "-bad" {@STEP@}
        }
        """,
        "train.step.-bad",
        (3, 8),
        "bad step name '-bad': use letters, digits, '-', '_' and '.'",
        id="bad-step-name",
    ),
    pytest.param(
        """
        version = "1.0"
        train {
          step "@LONG@" {@STEP@}
        }
        """.replace("@LONG@", "a" * 513),
        "train.step." + "a" * 513,
        (3, 8),
        "step name is longer than 512 characters",
        id="step-name-too-long",
    ),
    pytest.param(
        """
        version = "1.0"
        train {
          step "a" {
            image = "x"
            script = [{sh = ["a"]}]
            depends_on = ["prepare", "nope"]
          }
          step "prepare" {@STEP@}
        }
        """,
        "train.step.a.depends_on[1]",
        (6, 30),
        "depends on unknown step 'nope'; the steps in train are: a, prepare",
        id="unknown-dependency",
    ),
    pytest.param(
        """
        version = "1.0"
        train {
          step "a" {
            image = "x"
            script = [{sh = ["a"]}]
            depends_on = ["a"]
          }
        }
        """,
        "train.step.a.depends_on[0]",
        (6, 19),
        "step 'a' depends on itself",
        id="self-dependency",
    ),
    pytest.param(
        """
        version = "1.0"
        batch_score {
          step "load" {@STEP@}
          step "b" {
            image = "x"
            script = [{sh = ["b"]}]
            depends_on = ["load", "c"]
          }
          step "c" {
            image = "x"
            script = [{sh = ["c"]}]
            depends_on = ["b"]
          }
        }
        """,
        "batch_score.step.b.depends_on[1]",
        (10, 27),
        "dependency cycle: b -> c -> b",
        id="dependency-cycle",
    ),
    pytest.param(
        """
        version = "1.0"
        train {
          step "a" {
            script = [{sh = ["a"]}]
          }
        }
        """,
        "train.step.a.image",
        (3, 8),
        "image is required",
        id="missing-image-points-at-the-step",
    ),
    pytest.param(
        """
        version = "1.0"
        train {
          step "a" {
            image = "x"
            install = ["pip install -r requirements.txt"]
          }
        }
        """,
        "train.step.a.script",
        (3, 8),
        "script is required",
        id="missing-script-points-at-the-step",
    ),
    pytest.param(
        """
        version = "1.0"
        train {
          step "a" {
            image = "x"
            script = []
          }
        }
        """,
        "train.step.a.script",
        (5, 5),
        "script has no commands",
        id="empty-script",
    ),
    pytest.param(
        """
        version = "1.0"
        train {
          step "a" {@STEP@
            resources {
              cpu = "lots"
            }
          }
        }
        """,
        "train.step.a.resources.cpu",
        (8, 13),
        'cpu must be a number of CPUs such as "0.5", "2" or "500m"',
        id="cpu-not-a-quantity",
    ),
    pytest.param(
        """
        version = "1.0"
        train {
          step "a" {@STEP@
            resources {
              cpu = "0"
            }
          }
        }
        """,
        "train.step.a.resources.cpu",
        (8, 13),
        "cpu must be more than 0",
        id="cpu-zero",
    ),
    pytest.param(
        """
        version = "1.0"
        train {
          step "a" {@STEP@
            resources {
              cpu    = "1"
              memory = "4g"
            }
          }
        }
        """,
        "train.step.a.resources.memory",
        (9, 16),
        'memory must be a quantity such as "512M", "1G" or "1Gi"',
        id="memory-with-spark-style-unit",
    ),
    pytest.param(
        """
        version = "1.0"
        train {
          step "a" {@STEP@
            resources {
              gpu = "1.5"
            }
          }
        }
        """,
        "train.step.a.resources.gpu",
        (8, 13),
        'gpu must be a whole number of GPUs such as "1"',
        id="gpu-fraction",
    ),
    pytest.param(
        """
        version = "1.0"
        train {
          step "a" {@STEP@
            resources {
              gpu = -1
            }
          }
        }
        """,
        "train.step.a.resources.gpu",
        (8, 13),
        "found the number -1",
        id="gpu-negative",
    ),
    pytest.param(
        """
        version = "1.0"
        train {
          step "a" {
            image   = "x"
            install = "pip install -r requirements.txt"
            script  = [{sh = ["a"]}]
          }
        }
        """,
        "train.step.a.install",
        (5, 15),
        "expected a list of strings",
        id="install-not-a-list",
    ),
    pytest.param(
        """
        version = "1.0"
        train {
          step "a" {
            image   = "x"
            install = ["pip install x", 3]
            script  = [{sh = ["a"]}]
          }
        }
        """,
        "train.step.a.install[1]",
        (5, 33),
        "expected a string; found the number 3",
        id="install-item-not-a-string",
    ),
    pytest.param(
        """
        version = "1.0"
        train {
          step "a" {@STEP@}
          parameters = ["ALPHA"]
        }
        """,
        "train.parameters",
        (7, 16),
        'expected a block, e.g. parameters { ALPHA = "0.5" }; found a list',
        id="parameters-not-a-map",
    ),
    pytest.param(
        """
        version = "1.0"
        train {
          step "a" {@STEP@}
          parameters {
            ALPHA = ["0.5"]
          }
        }
        """,
        "train.parameters.ALPHA",
        (8, 13),
        "expected a string or number; found a list",
        id="parameter-value-a-list",
    ),
    pytest.param(
        """
        version = "1.0"
        train {
          step "a" {@STEP@}
          secrets = "DB_PASSWORD"
        }
        """,
        "train.secrets",
        (7, 13),
        'expected a list of strings, e.g. secrets = ["DB_PASSWORD"]; found the string '
        "'DB_PASSWORD'",
        id="secrets-not-a-list",
    ),
    pytest.param(
        """
        version = "1.0"
        train {
          step "a" {@STEP@
            retry {
              limit = -1
            }
          }
        }
        """,
        "train.step.a.retry.limit",
        (8, 15),
        "limit must be a whole number of retries (0 or more)",
        id="retry-limit-negative",
    ),
    pytest.param(
        """
        version = "1.0"
        train {
          step "a" {@STEP@
            retry {
              limit = "twice"
            }
          }
        }
        """,
        "train.step.a.retry.limit",
        (8, 15),
        "found the string 'twice'",
        id="retry-limit-not-a-number",
    ),
    pytest.param(
        """
        version = "1.0"
        train {
          step "a" {@STEP@}
          step "b" {
            image      = "x"
            script     = [{sh = ["b"]}]
            depends_on = "a"
          }
        }
        """,
        "train.step.b.depends_on",
        (10, 18),
        "expected a list of strings, e.g. depends_on = [\"preprocess\"]; found the string 'a'",
        id="depends-on-not-a-list",
    ),
    pytest.param(
        """
        version = "1.0"
        train {
          step "a" {
            image  = "x"
            script = [{bash = ["python train.py"]}]
          }
        }
        """,
        "train.step.a.script[0].bash",
        (5, 16),
        "unknown script command 'bash': expected sh or spark-submit",
        id="unknown-script-command",
    ),
    pytest.param(
        """
        version = "1.0"
        train {
          step "a" {
            image  = "x"
            script = [{sh = "python train.py"}]
          }
        }
        """,
        "train.step.a.script[0].sh",
        (5, 21),
        'expected a list of strings, e.g. sh = ["python train.py"]',
        id="sh-not-a-list",
    ),
    pytest.param(
        """
        version = "1.0"
        train {
          step "a" {
            image  = "x"
            script = [{spark-submit = {conf = {"spark.executor.instances" = "2"}}}]
          }
        }
        """,
        "train.step.a.script[0].spark-submit.script",
        (5, 16),
        'spark-submit needs the Python file to run: script = "train.py"',
        id="spark-submit-without-script",
    ),
    pytest.param(
        """
        version = "1.0"
        serve {
          image  = "python:3.11"
          script = [{spark-submit = {script = "serve.py"}}]
        }
        """,
        "serve.script[0].spark-submit",
        (4, 14),
        "serve runs sh commands only, not spark-submit",
        id="spark-submit-in-serve",
    ),
    pytest.param(
        """
        version = "1.0"
        serve {
          install = ["pip install -r requirements.txt"]
          script  = [{sh = ["python serve.py"]}]
        }
        """,
        "serve.image",
        (2, 1),
        "image is required",
        id="serve-without-image",
    ),
    pytest.param(
        """
        version = "1.0"
        train {
          step "a" {
            image  = "x"
            script = [{sh = ["a"]}]
            image  = "y"
          }
        }
        """,
        "train.step.a.image",
        (6, 5),
        "image is set more than once in the same block (also at line 4); keep one",
        id="key-set-twice",
    ),
    pytest.param(
        """
        version = "1.0"
        train {
          step "a" {@STEP@}
        }
        train {
          step "b" {@STEP@}
        }
        """,
        "train",
        (8, 1),
        "train is declared more than once (first at line 2); write it once",
        id="stanza-declared-twice",
    ),
    pytest.param(
        """
        version = "1.0"
        train {
          image = "python:3.11"
          step "a" {@STEP@}
        }
        """,
        "train.image",
        (3, 3),
        "image belongs inside a step block",
        id="stanza-level-image-beside-steps",
    ),
    pytest.param(
        """
        version = "1.0"
        train {
          step {@STEP@}
        }
        """,
        "train.step",
        (3, 3),
        'a step needs a name: step "name"',
        id="step-without-a-name",
    ),
    pytest.param(
        """
        version = "1.0"
        train = "python train.py"
        """,
        "train",
        (2, 9),
        "expected a block",
        id="stanza-not-a-block",
    ),
    pytest.param(
        """
        version = "1.0"
        batch_score {
          parameters {
            DAY = "2024-01-01"
          }
        }
        """,
        "batch_score.step",
        (2, 1),
        "batch_score has no steps",
        id="stanza-without-steps",
    ),
]


@pytest.mark.parametrize(("text", "path", "position", "fragment"), BROKEN)
def test_a_broken_file_reports_its_one_error_with_key_path_and_position(
    text: str, path: str, position: tuple[int | None, int | None], fragment: str
) -> None:
    errors = errors_of(hcl(text))

    assert len(errors) == 1, [problem.format("f") for problem in errors]
    assert fragment in errors[0].message
    assert errors[0].path == path
    assert (errors[0].line, errors[0].column) == position


@pytest.mark.parametrize(("text", "path", "position", "fragment"), BROKEN)
def test_both_parsers_report_the_same_error_when_both_read_the_file(
    text: str, path: str, position: tuple[int | None, int | None], fragment: str
) -> None:
    text = hcl(text)
    outcomes = []
    for parser in ("hcl2", "pyhcl"):
        with pytest.raises(SpecError) as raised:
            parse.load_with(text, parser=parser)
        outcomes.append(raised.value.errors)
    if any(error.message.startswith("syntax error") for error in outcomes[0] + outcomes[1]):
        pytest.skip("a syntax error: each parser reports its own")
    if fragment.endswith("keep one"):
        pytest.skip("pyhcl also makes a list of the two values, which adds a type error")

    assert outcomes[0] == outcomes[1]


def test_load_raises_a_spec_error_whose_text_names_file_line_and_key() -> None:
    text = hcl(
        """
        version = "1.0"
        train {
          step "a" {
            image  = "x"
            script = [{sh = ["a"]}]
            resources {
              memory = "lots"
            }
          }
        }
        """
    )

    with pytest.raises(SpecError) as raised:
        spec.load(text, filename="repo/bedrock.hcl")

    assert str(raised.value).startswith(
        "repo/bedrock.hcl:7:16: train.step.a.resources.memory: memory must be a quantity"
    )
    assert raised.value.errors == raised.value.problems


def test_check_never_raises_on_any_prefix_of_a_real_file() -> None:
    text = corpus("07").read_text(encoding="utf-8")

    for cut in range(0, len(text), len(text) // 40):
        problems = spec.check(text[:cut])
        assert all(isinstance(problem, Problem) for problem in problems)


def test_check_survives_nesting_deeper_than_any_real_file() -> None:
    deep_list = 'version = "1.0"\nx = ' + "[" * 3000 + "]" * 3000 + "\n"
    deep_blocks = "train {\n" + "a {\n" * 3000 + "}\n" * 3001

    assert any(problem.is_error for problem in spec.check(deep_list))
    assert any(problem.is_error for problem in spec.check(deep_blocks))


def test_a_file_that_is_not_utf8_is_a_spec_error(tmp_path: Path) -> None:
    path = tmp_path / "bedrock.hcl"
    path.write_bytes(b'version = "1.0"\ntrain { image = "caf\xe9" }\n')

    with pytest.raises(SpecError) as raised:
        spec.load_file(path)

    assert str(raised.value) == (
        f"{path}: the file is not UTF-8 text (byte 36: invalid continuation byte)"
    )


def test_a_spec_error_keeps_the_warnings_found_beside_the_errors() -> None:
    text = hcl(
        """
        train {
          step "a" {
            image  = "x"
            script = [{sh = ["a"]}]
            colour = "red"
            depends_on = ["b"]
          }
        }
        """
    )

    with pytest.raises(SpecError) as raised:
        spec.load(text)

    severities = [(problem.path, problem.severity) for problem in raised.value.problems]
    assert severities == [
        ("version", "warning"),
        ("train.step.a.colour", "warning"),
        ("train.step.a.depends_on[0]", "error"),
    ]


# --------------------------------------------------------------------------------------------
# Problem formatting


def test_a_problem_formats_as_file_line_column_path_message() -> None:
    problem = Problem("train.step.a.image", "image is required", 3, 8)

    assert problem.format("bedrock.hcl") == "bedrock.hcl:3:8: train.step.a.image: image is required"


def test_a_problem_without_a_position_or_path_leaves_them_out() -> None:
    assert (
        Problem("", "the file is empty", None, None).format("x.hcl") == "x.hcl: the file is empty"
    )
    assert Problem("version", "m", 4, None).format("x.hcl") == "x.hcl:4: version: m"


def test_a_warning_is_marked_after_the_location() -> None:
    problem = Problem("version", "no version", None, None, severity="warning")

    assert problem.format("x.hcl") == "x.hcl: version: warning: no version"


# --------------------------------------------------------------------------------------------
# Warnings for legacy and unknown forms


def test_a_missing_version_is_a_warning_and_reads_as_1_0() -> None:
    loaded = spec.load_file(corpus("21"))

    assert loaded.version is None
    assert [(w.path, w.line) for w in loaded.warnings] == [("version", None)]
    assert 'read as version "1.0"' in loaded.warnings[0].message


def test_version_1_1_loads_with_a_warning_at_the_version_line() -> None:
    loaded = spec.load_file(corpus("28"))

    assert loaded.version == "1.1"
    version_warning = next(w for w in loaded.warnings if w.path == "version")
    assert (version_warning.line, version_warning.column) == (10, 11)
    assert 'read as "1.0"' in version_warning.message


def test_an_unknown_key_is_a_warning_at_its_line() -> None:
    text = hcl(
        """
        version = "1.0"
        train {
          step "a" {
            image = "x"
            script = [{sh = ["a"]}]
            timeout = "1h"
          }
          schedule = "daily"
        }
        """
    )

    warnings = warnings_of(text)

    assert [(w.path, w.line, w.column) for w in warnings] == [
        ("train.step.a.timeout", 6, 5),
        ("train.schedule", 8, 3),
    ]
    assert "unknown key 'timeout' in step 'a' is ignored" in warnings[0].message


def test_the_features_stanza_is_ignored_with_a_warning_and_the_spark_block_is_used() -> None:
    loaded = spec.load_file(corpus("01"))

    assert ("features", 44) in [(w.path, w.line) for w in loaded.warnings]
    assert "train.spark" not in [w.path for w in loaded.warnings]
    train = loaded.stanza("train")
    assert train is not None
    assert train.steps[0].script[0].startswith("spark-submit --conf spark.executor.instances=2 ")


def test_a_2019_spark_block_turns_the_scripts_python_files_into_spark_submit_commands() -> None:
    loaded = spec.load(
        hcl(
            """
            version = "1.0"
            train {
              image = "asia.gcr.io/span-ai/ds_suite-pyspark:v0.11"
              script = ["train.py", "python3 report.py"]
              spark {
                conf {
                  spark.executor.instances = "2"
                  spark.sql.parquet.compression.codec = "gzip"
                }
                settings {
                  jars = "gs://spark-lib/bigquery/spark-bigquery-latest.jar"
                }
              }
            }
            """
        )
    )

    train = loaded.stanza("train")
    assert train is not None
    assert train.steps[0].script == (
        "spark-submit --conf spark.executor.instances=2"
        " --conf spark.sql.parquet.compression.codec=gzip"
        " --jars gs://spark-lib/bigquery/spark-bigquery-latest.jar train.py",
        "python3 report.py",
    )
    assert [w.path for w in loaded.warnings] == ["train.script"]
    assert "a Python file runs as spark-submit" in loaded.warnings[0].message


def test_a_spark_block_beside_step_blocks_is_ignored_with_a_warning() -> None:
    text = hcl(
        """
        version = "1.0"
        train {
          step "a" {
            @STEP@
          }
          spark {
            conf {
              spark.executor.instances = "2"
            }
          }
        }
        """
    )

    assert [(w.path, w.line) for w in warnings_of(text)] == [("train.spark", 9)]


def test_plain_string_scripts_run_as_shell_commands_with_a_warning() -> None:
    loaded = spec.load_file(corpus("16"))

    train = loaded.stanza("train")
    assert train is not None
    assert train.steps[0].script == ("python3 train.py",)
    assert [(w.path, w.line, w.column) for w in loaded.warnings] == [("train.script", 6, 5)]
    assert "plain strings in script" in loaded.warnings[0].message


def test_the_secrets_block_form_yields_its_keys_as_names() -> None:
    loaded = spec.load_file(corpus("30"))

    serve = loaded.stanza("serve")
    assert serve is not None
    assert serve.secrets == ("API_TOKEN",)
    assert [w.path for w in loaded.warnings] == ["serve.secrets"]


def test_a_secret_value_written_in_the_file_is_ignored_with_a_warning() -> None:
    text = hcl(
        """
        version = "1.0"
        serve {
          image  = "python:3.11"
          script = [{sh = ["python serve.py"]}]
          secrets {
            API_TOKEN = "hunter2"
          }
        }
        """
    )

    loaded = spec.load(text)

    assert loaded.stanzas["serve"].secrets == ("API_TOKEN",)
    assert "hunter2" not in repr(loaded)
    value_warning = next(w for w in loaded.warnings if w.path == "serve.secrets.API_TOKEN")
    assert value_warning.line == 6
    assert "ignored" in value_warning.message


def test_step_level_parameters_merge_into_the_stanza_with_a_warning() -> None:
    loaded = spec.load_file(corpus("28"))

    train = loaded.stanza("train")
    assert train is not None
    assert train.parameters == {
        "TRAINING_DATA_AWS_BUCKET": "s3://veritas-credit-scoring/data/training/latest"
    }
    merge_warning = next(w for w in loaded.warnings if w.path.endswith("parameters"))
    assert (merge_warning.path, merge_warning.line) == ("train.step.train.parameters", 28)


def test_a_stanza_parameter_wins_over_a_step_parameter_of_the_same_name() -> None:
    text = hcl(
        """
        version = "1.0"
        train {
          step "a" {
            image  = "x"
            script = [{sh = ["a"]}]
            parameters {
              ALPHA = "step"
              BETA  = "step"
            }
          }
          parameters {
            ALPHA = "stanza"
          }
        }
        """
    )

    loaded = spec.load(text)

    assert loaded.stanzas["train"].parameters == {"ALPHA": "stanza", "BETA": "step"}
    assert any(w.path == "train.step.a.parameters.ALPHA" for w in loaded.warnings)


# --------------------------------------------------------------------------------------------
# What a loaded file means


def test_block_form_spark_submit_renders_conf_then_settings_then_the_script() -> None:
    train = spec.load_file(corpus("02")).stanza("train")

    assert train is not None
    assert [step.name for step in train.steps] == ["train"]
    assert train.steps[0].script == (
        "spark-submit"
        " --conf spark.executor.instances=2"
        " --conf spark.kubernetes.container.image=asia.gcr.io/span-ai/ds_suite-pyspark:v0.13"
        " --conf spark.kubernetes.pyspark.pythonVersion=3"
        " --conf spark.driver.memory=4g"
        " --conf spark.driver.cores=2"
        " --conf spark.executor.memory=4g"
        " --conf spark.executor.cores=2"
        " --conf spark.memory.fraction=0.5"
        " --conf spark.hadoop.fs.AbstractFileSystem.gs.impl="
        "com.google.cloud.hadoop.fs.gcs.GoogleHadoopFS"
        " --conf spark.hadoop.google.cloud.auth.service.account.enable=true"
        " --conf spark.sql.parquet.compression.codec=gzip"
        " --jars gs://spark-lib/bigquery/spark-bigquery-latest.jar"
        " train.py",
    )


def test_attribute_form_spark_submit_renders_the_same_way() -> None:
    train = spec.load_file(corpus("08")).stanza("train")

    assert train is not None
    preprocess = train.steps[0]
    assert preprocess.name == "preprocess"
    assert preprocess.script == (
        "spark-submit --conf spark.executor.instances=2 --conf spark.executor.memory=4g"
        " --conf spark.executor.cores=2 --conf spark.sql.parquet.compression.codec=gzip"
        " preprocess.py",
    )
    assert preprocess.command() == "{ " + preprocess.script[0] + "; }"


def test_spark_submit_settings_become_double_dash_options() -> None:
    text = hcl(
        """
        version = "1.0"
        train {
          step "a" {
            image   = "x"
            script  = [
              {spark-submit = {
                script   = "main.py"
                conf     = {"spark.a" = "1"}
                settings = {jars = "x.jar", files = "key.json"}
              }},
              {sh = ["echo done"]},
            ]
          }
        }
        """
    )

    step = spec.load(text).stanzas["train"].steps[0]

    assert step.script == (
        "spark-submit --conf spark.a=1 --jars x.jar --files key.json main.py",
        "echo done",
    )


def test_command_joins_install_then_script_as_bedrock_did() -> None:
    step = Step(
        name="a",
        image="x",
        install=("pip install -r requirements.txt", "   ", ' eval "$(conda shell.bash hook)" '),
        script=("echo start;", "sleep 5 &", "python train.py"),
        resources=Resources(),
        depends_on=(),
    )

    assert step.command() == (
        "{ pip install -r requirements.txt; } && "
        '{ eval "$(conda shell.bash hook)"; } && '
        "{ echo start; } && "
        "{ sleep 5 & } && "
        "{ python train.py; }"
    )


def test_a_step_with_no_commands_has_an_empty_command() -> None:
    step = Step("a", "x", ("",), (" ",), Resources(), ())

    assert step.command() == ""


def resources_of(lines: str) -> Resources:
    text = (
        'version = "1.0"\ntrain {\n  step "a" {\n    image = "x"\n'
        '    script = [{sh = ["a"]}]\n    resources {\n' + lines + "\n    }\n  }\n}\n"
    )
    return spec.load(text).stanzas["train"].steps[0].resources


@pytest.mark.parametrize(
    ("written", "millicpu"),
    [('"0.5"', 500), ('"500m"', 500), ('"2"', 2000), ('"1.0"', 1000), ("3", 3000), ("0.25", 250)],
)
def test_cpu_is_read_as_millicpu(written: str, millicpu: int) -> None:
    resources = resources_of(f"cpu = {written}")

    assert resources.millicpu == millicpu
    assert resources.cpu == written.strip('"')


@pytest.mark.parametrize(
    ("written", "size"),
    [
        ("512M", 512 * 10**6),
        ("1G", 10**9),
        ("1Gi", 2**30),
        ("100Mi", 100 * 2**20),
        ("1.5G", 1_500_000_000),
        ("200k", 200_000),
    ],
)
def test_memory_is_read_as_bytes(written: str, size: int) -> None:
    resources = resources_of(f'memory = "{written}"')

    assert resources.memory_bytes == size
    assert resources.memory == written


def test_memory_without_a_unit_is_bytes_and_warned_about() -> None:
    text = (
        'version = "1.0"\ntrain {\n  step "a" {\n    image = "x"\n'
        '    script = [{sh = ["a"]}]\n    resources {\n      memory = "1024"\n    }\n  }\n}\n'
    )

    loaded = spec.load(text)

    assert loaded.stanzas["train"].steps[0].resources.memory_bytes == 1024
    assert [(w.path, w.line) for w in loaded.warnings] == [("train.step.a.resources.memory", 7)]


def test_gpu_may_be_a_number_or_a_string() -> None:
    assert resources_of("gpu = 1") == Resources(gpu="1", gpu_count=1)
    assert resources_of('gpu = "2"') == Resources(gpu="2", gpu_count=2)
    assert resources_of('cpu = "1"').gpu_count == 0


def test_absent_resources_are_none_and_zero_gpus() -> None:
    step = spec.load_file(corpus("14")).stanzas["serve"].steps[0]

    assert step.resources == Resources(None, None, None, None, None, 0)


def test_steps_come_in_dependency_order_and_otherwise_in_file_order() -> None:
    text = hcl(
        """
        version = "1.0"
        train {
          step "report" {@STEP@  depends_on = ["train"]
          }
          step "fetch" {@STEP@}
          step "train" {@STEP@  depends_on = ["fetch"]
          }
          step "lint" {@STEP@}
        }
        """
    )

    train = spec.load(text).stanzas["train"]

    assert [step.name for step in train.steps] == ["fetch", "train", "report", "lint"]
    assert train.step("report") is not None
    assert train.step("report").depends_on == ("train",)  # type: ignore[union-attr]


def test_corpus_dags_keep_their_chain_order() -> None:
    loaded = spec.load_file(corpus("23"))

    train = loaded.stanza("train")
    assert train is not None
    assert [(s.name, s.depends_on) for s in train.steps] == [
        ("get_dataset", ()),
        ("train1", ("get_dataset",)),
        ("train2", ("train1",)),
    ]


def test_parameters_are_coerced_to_strings_by_either_parser() -> None:
    text = hcl(
        """
        version = "1.0"
        train {
          step "a" {@STEP@}
          parameters {
            WORKERS = 2
            ALPHA   = 0.5
            DEBUG   = true
            NAME    = "x"
            EMPTY   = ""
          }
        }
        """
    )
    expected = {"WORKERS": "2", "ALPHA": "0.5", "DEBUG": "true", "NAME": "x", "EMPTY": ""}

    for parser in ("hcl2", "pyhcl"):
        assert parse.load_with(text, parser=parser).stanzas["train"].parameters == expected


def test_the_legacy_single_step_form_is_one_step_named_after_the_stanza() -> None:
    loaded = spec.load_file(corpus("03"))

    batch_score = loaded.stanza("batch_score")
    assert batch_score is not None
    assert [step.name for step in batch_score.steps] == ["batch_score"]
    step = batch_score.steps[0]
    assert step.image == "basisai/workload-standard:v0.1.0"
    assert step.install == ("pip3 install -r requirements.txt && pip3 install pandas-gbq",)
    assert step.script[0].startswith("spark-submit --conf spark.executor.instances=2")
    assert step.script[0].endswith(" batch_score.py")
    assert loaded.stanzas["train"].secrets == ("BEDROCK_ACCESS_TOKEN",)


@pytest.mark.parametrize(("written", "limit"), [("2", 2), ('"1"', 1), ("0", 0)])
def test_retry_limit_accepts_a_number_or_a_numeric_string(written: str, limit: int) -> None:
    text = hcl(
        """
        version = "1.0"
        train {
          step "a" {@STEP@  retry {
              limit = @LIMIT@
            }
          }
        }
        """.replace("@LIMIT@", written)
    )

    assert spec.load(text).stanzas["train"].steps[0].retry_limit == limit


def test_retry_limit_defaults_to_zero() -> None:
    steps = spec.load_file(corpus("09")).stanzas["train"].steps
    assert [step.retry_limit for step in steps] == [1, 0, 3]

    steps = spec.load_file(corpus("17")).stanzas["train"].steps
    assert steps[0].retry_limit == 0


def test_serve_is_one_step_named_serve_with_its_parameters_and_secrets() -> None:
    serve = spec.load_file(corpus("19")).stanza("serve")

    assert serve is not None
    assert [step.name for step in serve.steps] == ["serve"]
    assert serve.steps[0].install == ("pip install streamlit",)
    assert serve.parameters == {"SERVE_PARAMS_A": "serve_a", "SERVE_PARAMS_B": "serve_b"}
    assert serve.secrets == ("SERVE_SECRET_A", "SERVE_SECRET_B")


def test_a_spec_lists_only_the_stanzas_the_file_has() -> None:
    loaded = spec.load_file(corpus("11"))

    assert set(loaded.stanzas) == {"batch_score"}
    assert loaded.stanza("train") is None


def test_escapes_reach_bash_as_written_because_pyhcl_reads_such_files() -> None:
    text = hcl(
        r"""
        version = "1.0"
        train {
          step "a" {
            image  = "x"
            script = [{sh = ["printf 'a\tb\n' | sed 's/\"//'"]}]
          }
        }
        """
    )

    loaded = spec.load(text)

    assert loaded.parser == "pyhcl"
    assert loaded.stanzas["train"].steps[0].script == ("printf 'a\\tb\\n' | sed 's/\"//'",)


# --------------------------------------------------------------------------------------------
# Limits checked before parsing


def test_brackets_inside_strings_comments_and_heredocs_do_not_count_towards_the_depth() -> None:
    from bedrock.pipelines.spec.limits import SpecLimits, scan

    deep = "[" * 40
    text = f'x = "{deep}"\n# {deep}\n/* {deep} */\ny = <<EOF\n{deep}\nEOF\nz = [[1]]\n'
    assert scan(text, SpecLimits(config_depth=2)) is None
    overrun = scan(text, SpecLimits(config_depth=1))
    assert overrun is not None and text[overrun.offset :].startswith("[1]]")


def test_the_size_limit_counts_utf8_bytes_not_characters(settings) -> None:
    settings.BEDROCK_MAX_CONFIG_BYTES = 1000
    text = 'version = "1.0"\n# ' + "é" * 600 + "\n"
    [problem] = errors_of(text)
    assert problem.message.startswith("the file is 1219 bytes; at most 1000 bytes are read")
    assert (problem.line, problem.column) == (None, None)


def test_a_retry_limit_within_the_setting_is_accepted(settings) -> None:
    settings.BEDROCK_MAX_RETRIES = 3
    text = hcl(
        """
        version = "1.0"
        train {
          step "a" {@STEP@  retry { limit = 3 }
          }
        }
        """
    )
    assert spec.load(text).stanza("train").steps[0].retry_limit == 3
    assert "(BEDROCK_MAX_RETRIES)" in errors_of(text.replace("limit = 3", "limit = 4"))[0].message
