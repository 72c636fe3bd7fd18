"""Runs the Dockerfile's build without Docker (CI has no Docker engine), from the Dockerfile
itself so the two cannot drift apart:

1. parses the Dockerfile (continuation lines, ARG defaults, stages);
2. replays the build stage in a scratch root: WORKDIR, COPY (from the repo, as the build
   context), ENV, and every RUN line with `/bin/sh -c`, as Docker runs the shell form
   (`--mount` options dropped; CARGO_TARGET_DIR points at the repo's target/ so earlier
   builds are reused);
3. replays the runtime stage's `COPY --from=<build stage>` into a second scratch root and
   checks what the image would run: the ENTRYPOINT with `--help`, the HEALTHCHECK command
   with `--help`, the binary's shared libraries (only glibc's, present in debian-slim), a
   non-root USER, RECORDINGS_DIR, and the metrics port exposed.

The runtime stage's own RUN lines (apt-get, useradd) need a Debian root filesystem: they are
only linted (hadolint, in dockerfile-steps.sh).

Usage: python3 dockerfile_steps.py <repo> [Dockerfile]
"""

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ALLOWED_LIBS = {"linux-vdso.so.1", "libgcc_s.so.1", "libm.so.6", "libc.so.6", "libpthread.so.0", "libdl.so.2",
                "librt.so.1", "ld-linux-x86-64.so.2", "ld-linux-aarch64.so.1"}


def fail(message):
    print(f"dockerfile-steps: FAIL: {message}", file=sys.stderr)
    sys.exit(1)


def instructions(text):
    """(keyword, argument) pairs, continuation lines joined, comments dropped."""
    out, current = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if current and line.startswith("#"):
            continue  # comment lines inside a continued instruction
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        keyword, _, rest = current.strip().partition(" ")
        out.append((keyword.upper(), rest.strip()))
        current = ""
    if current:
        fail("the Dockerfile ends inside a continued line")
    return out


def substitute(value, variables):
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: variables.get(m.group(1) or m.group(2), ""), value)


def parse_args_decl(rest):
    name, _, default = rest.partition("=")
    return name.strip(), default.strip().strip('"')


def parse_env(rest):
    """ENV k=v k2="v 2" (the legacy `ENV k v` form too)."""
    if "=" not in rest.split(" ", 1)[0]:
        key, _, value = rest.partition(" ")
        return {key: value.strip()}
    return dict(part.split("=", 1) for part in shlex.split(rest))


def split_flags(rest):
    """Leading --flag=value options of COPY/RUN/HEALTHCHECK, and the rest."""
    flags = {}
    while rest.startswith("--"):
        flag, _, rest = rest.partition(" ")
        name, _, value = flag[2:].partition("=")
        flags.setdefault(name, []).append(value)
        rest = rest.lstrip()
    return flags, rest


def stages(items):
    global_args, result, stage = {}, [], None
    for keyword, rest in items:
        if keyword == "FROM":
            parts = rest.split()
            image = substitute(parts[0], global_args)
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else str(len(result))
            stage = {"name": name, "image": image, "items": [], "args": dict(global_args)}
            result.append(stage)
        elif stage is None:
            if keyword == "ARG":
                key, default = parse_args_decl(rest)
                global_args[key] = default
        else:
            stage["items"].append((keyword, rest))
    return result


def mapped(root, workdir, path):
    path = path if path.startswith("/") else os.path.join(workdir, path)
    return Path(root) / os.path.normpath(path).lstrip("/")


def copy_into(sources, dest, context, root, workdir):
    target = mapped(root, workdir, dest)
    if dest.endswith("/") or len(sources) > 1:
        target.mkdir(parents=True, exist_ok=True)
    for src in sources:
        origin = Path(context) / src
        if not origin.exists():
            fail(f"COPY source {src} does not exist in the build context")
        if origin.is_dir():
            shutil.copytree(origin, target if not dest.endswith("/") or src in (".", "./") else target / origin.name,
                            dirs_exist_ok=True)
        else:
            destination = target / origin.name if target.is_dir() else target
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, destination)


def replay_build(stage, repo, root):
    variables, env, workdir = dict(stage["args"]), {}, "/"
    for keyword, rest in stage["items"]:
        if keyword == "ARG":
            key, default = parse_args_decl(rest)
            variables.setdefault(key, default)
        elif keyword == "WORKDIR":
            workdir = substitute(rest, {**variables, **env})
            mapped(root, "/", workdir).mkdir(parents=True, exist_ok=True)
        elif keyword == "ENV":
            env.update({k: substitute(v, {**variables, **env}) for k, v in parse_env(rest).items()})
        elif keyword == "COPY":
            flags, rest = split_flags(rest)
            if "from" in flags:
                fail("COPY --from inside the build stage is not replayed by this script")
            *sources, dest = shlex.split(substitute(rest, {**variables, **env}))
            copy_into(sources, dest, repo, root, workdir)
        elif keyword == "RUN":
            _, command = split_flags(rest)
            if command.startswith("["):
                argv = json.loads(command)
            else:
                argv = ["/bin/sh", "-c", command]
            run_env = dict(os.environ, **env, **{k: v for k, v in variables.items() if k not in env})
            run_env.setdefault("CARGO_TARGET_DIR", str(Path(repo) / "target"))
            cwd = mapped(root, "/", workdir)
            print(f"dockerfile-steps: RUN {command}   (in {cwd})", flush=True)
            started = time.monotonic()
            proc = subprocess.run(argv, cwd=cwd, env=run_env)
            print(f"dockerfile-steps: RUN took {time.monotonic() - started:.0f}s", flush=True)
            if proc.returncode != 0:
                fail(f"RUN {command} exited {proc.returncode}")
        elif keyword in ("LABEL", "SHELL", "USER", "EXPOSE", "CMD", "ENTRYPOINT"):
            pass
        else:
            fail(f"{keyword} in the build stage is not replayed by this script; extend it")


def check_rust_version(image, repo):
    match = re.match(r"rust:(\d+)\.(\d+)", image)
    if not match:
        return
    wanted = re.search(r'^rust-version\s*=\s*"(\d+)\.(\d+)', (Path(repo) / "Cargo.toml").read_text(), re.M)
    if wanted and tuple(map(int, match.groups())) < tuple(map(int, wanted.groups())):
        fail(f"build image {image} is older than Cargo.toml's rust-version {'.'.join(wanted.groups())}")


def check_runtime(stage, build, build_root, root):
    variables, env, workdir, user = dict(stage["args"]), {}, "/", None
    entrypoint = healthcheck = None
    exposed = []
    for keyword, rest in stage["items"]:
        if keyword == "ARG":
            key, default = parse_args_decl(rest)
            variables.setdefault(key, default)
        elif keyword == "ENV":
            env.update({k: substitute(v, {**variables, **env}) for k, v in parse_env(rest).items()})
        elif keyword == "WORKDIR":
            workdir = substitute(rest, variables)
        elif keyword == "USER":
            user = substitute(rest, variables)
        elif keyword == "EXPOSE":
            exposed += rest.split()
        elif keyword == "ENTRYPOINT":
            entrypoint = json.loads(rest)
        elif keyword == "HEALTHCHECK":
            _, command = split_flags(rest)
            if not command.startswith("CMD "):
                fail("HEALTHCHECK must run a command")
            healthcheck = json.loads(command[4:])
        elif keyword == "COPY":
            flags, rest = split_flags(rest)
            if flags.get("from") != [build["name"]]:
                fail(f"runtime COPY without --from={build['name']} is not checked by this script")
            *sources, dest = shlex.split(substitute(rest, variables))
            for src in sources:
                origin = mapped(build_root, "/", src)
                if not origin.exists():
                    fail(f"COPY --from={build['name']} {src}: the build stage did not produce it")
                target = mapped(root, workdir, dest)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(origin, target)
    if not entrypoint or not healthcheck:
        fail("the runtime stage needs an exec-form ENTRYPOINT and a HEALTHCHECK")
    if user is None or user.split(":")[0] in ("root", "0"):
        fail(f"the runtime stage must run as a non-root USER (found {user!r})")
    if env.get("RECORDINGS_DIR") != "/app/server/recordings":
        fail(f"RECORDINGS_DIR must default to /app/server/recordings (found {env.get('RECORDINGS_DIR')!r})")
    port = env.get("RQW_METRICS_ADDR", "").rsplit(":", 1)[-1]
    if port not in [e.split("/")[0] for e in exposed]:
        fail(f"the metrics port {port!r} (RQW_METRICS_ADDR) is not EXPOSEd ({exposed})")

    path = [str(root / p.lstrip("/")) for p in env.get("PATH", "/usr/local/bin:/usr/bin:/bin").split(":")]
    run_env = {"PATH": os.pathsep.join(path), **{k: v for k, v in env.items() if k != "PATH"}}
    binary = shutil.which(entrypoint[0], path=run_env["PATH"])
    if binary is None:
        fail(f"ENTRYPOINT {entrypoint[0]} is not in the runtime image")
    libs = subprocess.run(["ldd", binary], capture_output=True, text=True).stdout
    needed = {line.split()[0].rsplit("/", 1)[-1] for line in libs.splitlines() if line.strip()}
    if needed - ALLOWED_LIBS:
        fail(f"{binary} links libraries debian-slim may lack: {sorted(needed - ALLOWED_LIBS)}")
    for argv in ([entrypoint[0], "--help"], [*entrypoint, "--help"], [*healthcheck, "--help"]):
        proc = subprocess.run([binary, *argv[1:]], env=run_env, capture_output=True, text=True, timeout=30)
        if proc.returncode != 0 or "Usage:" not in proc.stdout:
            fail(f"`{' '.join(argv)}` in the runtime image: exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
        print(f"dockerfile-steps: ok: {' '.join(argv)}")


def main():
    repo = Path(sys.argv[1]).resolve()
    dockerfile = Path(sys.argv[2]) if len(sys.argv) > 2 else repo / "Dockerfile"
    all_stages = stages(instructions(dockerfile.read_text()))
    if len(all_stages) < 2:
        fail("expected a multi-stage Dockerfile (build, runtime)")
    runtime = all_stages[-1]
    sources = {flags_from for k, r in runtime["items"] if k == "COPY"
               for flags_from in split_flags(r)[0].get("from", [])}
    builds = [s for s in all_stages if s["name"] in sources]
    if len(builds) != 1:
        fail(f"the runtime stage must copy from exactly one build stage (found {sorted(sources)})")
    build = builds[0]
    check_rust_version(build["image"], repo)
    with tempfile.TemporaryDirectory(prefix="dockerfile-steps-") as scratch:
        build_root, runtime_root = Path(scratch) / "build", Path(scratch) / "runtime"
        replay_build(build, repo, build_root)
        check_runtime(runtime, build, build_root, runtime_root)
    print(f"dockerfile-steps: {dockerfile.name}: build stage {build['name']!r} ({build['image']}) replayed, "
          f"runtime stage {runtime['name']!r} ({runtime['image']}) checked")


if __name__ == "__main__":
    main()
