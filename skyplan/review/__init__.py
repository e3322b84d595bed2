"""Review of plan changes in pull requests: the PR comment of `skyplan diff` (`comment`), the
resources a rendered stack declares (`tfscan`) and what `terraform plan` will do (`tfplan`).
`skyplan compile --check` lives in `skyplan/check.py`."""
