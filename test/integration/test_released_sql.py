"""Released SQL is never edited: the install and update scripts users have
run are kept byte for byte in sql/released/, their checksums recorded in
sql/released/SHA256SUMS, and installed as they are."""
import hashlib
import os
import pathlib
import subprocess

ROOT = pathlib.Path(__file__).resolve().parents[2]
RELEASED = ROOT / "sql" / "released"
RULE = ("released SQL is never edited: put the change in the version in development "
        "(sql/README.md) and restore the released file with git")


def recorded():
    sums = {}
    for line in (RELEASED / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split(maxsplit=1)
        sums[name.lstrip("*")] = digest
    return sums


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_every_released_script_has_the_bytes_it_was_released_with():
    sums = recorded()
    on_disk = sorted(p.name for p in RELEASED.glob("stocks_stream--*.sql"))
    assert on_disk == sorted(sums), (
        f"sql/released/ holds {on_disk} but SHA256SUMS records {sorted(sums)}: a released script "
        "is never removed, and one is added (with its checksum) only when its version is released")
    changed = [name for name, digest in sums.items() if sha256(RELEASED / name) != digest]
    assert not changed, f"{', '.join(changed)} changed since its release; {RULE}"


def test_the_released_scripts_are_installed_as_they_are():
    pg_config = os.environ.get("PG_CONFIG", "pg_config")
    share = pathlib.Path(subprocess.run([pg_config, "--sharedir"], capture_output=True, text=True,
                                        check=True).stdout.strip()) / "extension"
    differ = [name for name in recorded() if sha256(share / name) != sha256(RELEASED / name)]
    assert not differ, f"the installed {', '.join(differ)} differ from sql/released/ (run make install)"
