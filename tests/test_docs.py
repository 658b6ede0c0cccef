"""The documentation under docs/ against the code: the bedrock.hcl files it shows are valid, and
its links lead to files and sections that exist (the README's sections move as it is edited)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from bedrock.pipelines import spec
from tests.buckets import bucket_name

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted((ROOT / "docs").glob("*.md"))
HCL_BLOCK = re.compile(r"^```hcl[^\n]*\n(?P<body>.*?)^```", re.M | re.S)
LINK = re.compile(r"\]\((?P<target>[^)\s]+)\)")
HEADING = re.compile(r"^#{1,6} (?P<title>.+)$", re.M)
FENCED = re.compile(r"^```.*?^```", re.M | re.S)
PYTHON_BLOCK = re.compile(r"^```python\n(?P<body>.*?)^```", re.M | re.S)


def anchor(title: str) -> str:
    """GitHub's id for a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = FENCED.sub("", page.read_text())
    return {anchor(match.group("title")) for match in HEADING.finditer(text)}


def complete_files(page: Path) -> list[str]:
    """The hcl blocks that are whole files (they start with the version), not fragments."""
    blocks = [match.group("body") for match in HCL_BLOCK.finditer(page.read_text())]
    return [block for block in blocks if block.lstrip().startswith("version")]


def test_the_pages_exist_and_show_complete_files():
    assert {page.name for page in PAGES} >= {"bedrock-hcl.md", "tutorial.md", "migrating.md"}
    assert complete_files(ROOT / "docs" / "bedrock-hcl.md")
    assert complete_files(ROOT / "docs" / "tutorial.md")


@pytest.mark.parametrize("page", PAGES, ids=[page.name for page in PAGES])
def test_every_complete_bedrock_hcl_a_page_shows_is_valid_without_warnings(page):
    for text in complete_files(page):
        loaded = spec.load(text, filename=page.name)
        assert loaded.warnings == (), [problem.format(page.name) for problem in loaded.warnings]


@pytest.mark.parametrize(
    "page", [*PAGES, ROOT / "README.md"], ids=[*(page.name for page in PAGES), "README.md"]
)
def test_every_relative_link_leads_to_a_file_and_section_that_exist(page):
    text = FENCED.sub("", page.read_text())
    for match in LINK.finditer(text):
        target = match.group("target")
        if re.match(r"[a-z]+:", target):
            continue  # another site
        path, _, section = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        assert linked.exists(), f"{page.name} links to {target}, which does not exist"
        if section and linked.suffix == ".md":
            assert section in anchors(linked), f"{page.name} links to {target}: no such section"


def documented_python(page: Path, first_line: str) -> str:
    """The page's Python block that starts with ``first_line``."""
    blocks = [match.group("body") for match in PYTHON_BLOCK.finditer(page.read_text())]
    (found,) = [block for block in blocks if block.startswith(first_line)]
    return found


def test_the_documented_batch_output_script_writes_the_scores_to_the_bucket(s3_endpoint, tmp_path):
    import boto3

    bucket = bucket_name("scores")
    client = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    client.create_bucket(Bucket=bucket)
    script = tmp_path / "score.py"
    script.write_text(documented_python(ROOT / "docs" / "bedrock-hcl.md", "# score.py: boto3"))
    # What the step's environment holds: the two secrets, the parameter, Bedrock's run number;
    # the endpoint stands in for AWS.
    environment = {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_ENDPOINT_URL": s3_endpoint,
        "AWS_DEFAULT_REGION": "us-east-1",
        "OUTPUT_URI": f"s3://{bucket}/churn/scores",
        "BEDROCK_PIPELINE_RUN_ID": "7",
    }

    done = subprocess.run(
        [sys.executable, str(script)], env=environment, capture_output=True, text=True, timeout=60
    )

    assert done.returncode == 0, done.stderr
    assert f"wrote 2 scores to s3://{bucket}/churn/scores/run-7.csv" in done.stdout
    written = client.get_object(Bucket=bucket, Key="churn/scores/run-7.csv")["Body"].read()
    assert written.decode().splitlines() == [
        "customer,churn_probability",
        "c01,0.12",
        "c02,0.87",
    ]
