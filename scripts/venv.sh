# Sourced by scripts/dev and scripts/test: a project virtualenv in .venv, reinstalled only
# when pyproject.toml changes.
ensure_venv() {
  local python=${PYTHON:-python3}
  local stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
  if [ ! -x .venv/bin/python ]; then
    echo "creating .venv with $($python --version)" >&2
    "$python" -m venv .venv
  fi
  if [ ! -f "$stamp" ]; then
    echo "installing authsvc and its test tools into .venv (first run takes a minute)" >&2
    .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip >&2
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[test]" >&2
    rm -f .venv/.installed-*
    touch "$stamp"
  fi
}
