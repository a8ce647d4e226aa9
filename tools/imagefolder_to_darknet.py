#!/usr/bin/env python3
"""A folder-per-class image tree (torchvision's ImageFolder layout, e.g. ImageNet's train/ and a
val/ sorted into class folders) -> Darknet's classification lists, labels and .data file.

Usage: python3 tools/imagefolder_to_darknet.py <train_dir> <valid_dir> <out_dir> [name]

<train_dir>/<class>/**/<image> (any depth below the class folder). Writes, in <out_dir>:
  train.list, valid.list   absolute image paths, one a line, sorted
  labels.txt               one label a line, in the sorted order of the class folders
  <name>.data              classes, train, valid, labels, backup=backup/<name>/, top
(name defaults to the base name of <out_dir>). The valid tree may hold a subset of the
classes, never a class the train tree lacks.

Darknet finds an image's class as the label that is a SUBSTRING of its path, so plain class
names would misfire ("shirt" is inside "t-shirt"; a class named like a directory above the
tree matches everything). Each label is therefore "/<class>/", which can only match the class
folder as a whole path component; every listed path is checked to match exactly one label,
and anything else (a class folder nested in another class folder, a class name repeated
higher up in the path, a name with a newline, a symbolic link back up the tree) is refused
with one line and nothing written. The four files are written together (tools/output_paths.py):
an error leaves none of them and no temporary file.
Only images Darknet can read are listed (stb_image: jpg, jpeg, png, bmp, tga, gif, ppm, pgm;
any letter case).
"""
import os
import sys

from output_paths import Refused, one_line_failures, refuse_outputs, write_all

EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".tga", ".gif", ".ppm", ".pgm"}


def classes_of(root):
    if not os.path.isdir(root):
        raise Refused(f"{root}: not a directory")
    names = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
    if not names:
        raise Refused(f"{root}: no class folders (expected {root}/<class>/<images>)")
    for n in names:
        if "\n" in n or "\r" in n:
            raise Refused(f"{root}: class folder name {n!r} holds a line break")
    return names


def images_of(root, classes, labels):
    paths = []
    for c in classes:
        # symbolic links to folders are followed, each folder once: a link back up the tree
        # (a loop) or a second link to a folder would list its images again and again
        visited = {}
        for dirpath, dirnames, files in os.walk(os.path.join(root, c), followlinks=True):
            real = os.path.realpath(dirpath)
            if real in visited:
                raise Refused(f"{dirpath}: the folder {visited[real]} again (a symbolic link loop or a second "
                              f"link to it): its images would be listed twice; remove the link")
            visited[real] = dirpath
            for d in dirnames:
                target = os.path.realpath(os.path.join(dirpath, d))
                if real == target or real.startswith(target + os.sep):
                    raise Refused(f"{os.path.join(dirpath, d)}: a symbolic link to {target}, a folder above it "
                                  f"(a loop): its images would be listed again and again; remove the link")
            dirnames.sort()
            for f in sorted(files):
                if os.path.splitext(f)[1].lower() not in EXTENSIONS:
                    continue
                p = os.path.abspath(os.path.join(dirpath, f))
                if "\n" in p or "\r" in p:
                    raise Refused(f"{p!r}: a path with a line break cannot go in a Darknet list")
                hits = [l for l in labels if l in p]
                if hits != ["/" + c + "/"]:
                    raise Refused(f"{p}: matches the labels {hits}, not exactly its class folder's "
                                  f"'/{c}/' (a class name repeated in the path): Darknet could not tell its class")
                paths.append(p)
    if not paths:
        raise Refused(f"{root}: no images Darknet can read ({', '.join(sorted(EXTENSIONS))})")
    return paths


def convert(train_dir, valid_dir, out_dir, name):
    classes = classes_of(train_dir)
    labels = ["/" + c + "/" for c in classes]
    valid_classes = classes_of(valid_dir)
    extra = sorted(set(valid_classes) - set(classes))
    if extra:
        raise Refused(f"{valid_dir}: class folders {extra[:5]} are not in {train_dir}")
    train = images_of(train_dir, classes, labels)
    valid = images_of(valid_dir, valid_classes, labels)
    out = os.path.abspath(out_dir)
    files = [(os.path.join(out_dir, "labels.txt"), "".join(l + "\n" for l in labels)),
             (os.path.join(out_dir, "train.list"), "".join(p + "\n" for p in train)),
             (os.path.join(out_dir, "valid.list"), "".join(p + "\n" for p in valid)),
             (os.path.join(out_dir, name + ".data"),
              f"classes={len(classes)}\ntrain={out}/train.list\nvalid={out}/valid.list\n"
              f"labels={out}/labels.txt\nbackup=backup/{name}/\ntop={min(5, len(classes))}\n")]
    refuse_outputs("imagefolder_to_darknet.py", [(p, "an output") for p, _ in files],
                   [(train_dir, "the train tree"), (valid_dir, "the valid tree")])
    os.makedirs(out_dir, exist_ok=True)
    write_all(files)
    return len(classes), len(train), len(valid)


def main(argv):
    if len(argv) not in (4, 5):
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 1
    name = argv[4] if len(argv) == 5 else os.path.basename(os.path.normpath(argv[3]))
    n, nt, nv = one_line_failures(lambda: convert(argv[1], argv[2], argv[3], name))
    print(f"{os.path.join(argv[3], name + '.data')}: {n} classes, {nt} train and {nv} valid images")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
