"""What the tools in tools/ share about the files they write: the one check that an output is
none of the inputs (nor another output, nor inside an input folder), and writes that leave
either every output whole or none of them.

The Python twin of train_refuse_output and the temporary-file-and-rename saves of the C side
(tat_layer/train/input_checks.h): a refusal is one line, raised as Refused, nothing written.
"""
import os
import secrets
import sys


class Refused(Exception):
    """One line for the user: the tool prints it and exits 1."""


def one_line_failures(work):
    """work()'s result; a refusal, or a file that cannot be read or written, is printed as one
    line and the tool exits 1."""
    try:
        return work()
    except Refused as e:
        print(e, file=sys.stderr)
    except OSError as e:
        print(f"{e.filename}: {e.strerror}", file=sys.stderr)
    sys.exit(1)


def same_file(a, b):
    """The same file: the same inode when both exist, else the same canonical path (symbolic
    links and ./ resolved in the directory part; the last name may not exist yet)."""
    if os.path.exists(a) and os.path.exists(b):
        return os.path.samefile(a, b)
    canon = lambda p: os.path.join(os.path.realpath(os.path.dirname(p) or "."), os.path.basename(p))
    return canon(a) == canon(b)


def refuse_outputs(tool, outputs, inputs):
    """outputs, inputs: [(path, what)], e.g. ("r18.weights", "the output weights"). Raises
    Refused when an output is the same file as an input or an earlier output, or lies directly
    in an input that is a folder."""
    seen = list(inputs)
    for path, what in outputs:
        for other, other_what in seen:
            if os.path.isdir(other):
                clash = same_file(os.path.dirname(path) or ".", other)
                how = "would go into"
            else:
                clash = same_file(path, other)
                how = "is the same file as"
            if clash:
                raise Refused(f"{path}: {tool}: {what} {how} {other_what} ({other}): refusing to write it, nothing written")
        seen.append((path, what))


def temp_path(path):
    """<path>.<pid>-<random>.tmp: never shared by two processes, never a user's own file."""
    return f"{path}.{os.getpid()}-{secrets.token_hex(4)}.tmp"


def write_all(files):
    """files: [(path, bytes or str)]. Each goes to its own temporary file first; only when all
    are written are they renamed over their targets, so an error (a missing folder, a full
    disk) leaves no output and no temporary file. Raises Refused naming the real path."""
    written = []
    try:
        for path, data in files:
            tmp = temp_path(path)
            try:
                with open(tmp, "wb") as f:
                    written.append(tmp)
                    f.write(data.encode() if isinstance(data, str) else data)
                    f.flush()
                    os.fsync(f.fileno())
            except OSError as e:
                raise Refused(f"{path}: cannot write: {e.strerror}") from None
        for (path, _), tmp in zip(files, written):
            try:
                os.replace(tmp, path)
            except OSError as e:
                raise Refused(f"{path}: cannot write: {e.strerror}") from None
    finally:
        for tmp in written:
            if os.path.lexists(tmp):
                os.unlink(tmp)
