// Package image unpacks container images into a directory, for use as a
// root file system by `selfdock --rootfs DIR run`.
//
// Import reads, from a file, a directory or standard input:
//   - a `docker save` tarball, old (ID/layer.tar) or Docker 25 and later
//     (an OCI layout inside), optionally compressed; Options.Image picks one
//     image of an archive that holds several;
//   - an OCI image layout, as a directory or a tarball;
//   - a plain root file system tarball, uncompressed or gzip, zstd, xz or
//     bzip2 compressed;
//   - a squashfs image, through sqfs2tar (squashfs-tools-ng) run with the
//     process's own rights, whose tar stream goes through the same code.
//
// Layers are applied in order, the way a container runtime stacks them:
// whiteouts (".wh.NAME") remove what lower layers made, opaque directories
// (".wh..wh..opq") hide everything lower layers had there, hardlinks are
// made as hardlinks, so a hardlink survives a later layer's removal of the
// name it linked to (flattening with go-containerregistry's mutate.Extract
// loses it). Each layer's uncompressed tar is checked against the config's
// diff_id, and each blob against its digest where the archive names one;
// manifests, indexes and configs are checked against their digests too.
//
// Safety: the package runs with the rights of the process and never asks
// for more; selfdock drops its setuid privileges for good before calling
// it. Every path is resolved beneath the destination by descriptor
// (openat2 RESOLVE_BENEATH): an absolute name, a ".." component, a write
// through a symlink that points outside, or a hardlink to outside is
// refused with an error, and nothing is ever created outside the
// destination. Import unpacks into a temporary sibling of the destination
// and renames it into place at the end; on any error (a truncated or
// corrupt archive, a digest mismatch, a refused entry, cancellation) the
// temporary tree is removed and the destination is not created. An import
// makes at most Options.MaxEntries (default DefaultMaxEntries) entries.
//
// A source that can be read only once (standard input, a pipe, a
// compressed file) is unpacked as it streams; when what it held turns out
// to be an image archive (manifest.json, index.json or oci-layout at its
// top), those unpacked files are read as the image into a fresh tree. A
// squashfs on standard input is copied to an unnamed temporary file.
// Sparse tar entries are refused: their holes would be written as zeros.
//
// Ownership: by default everything belongs to the caller, setuid and
// setgid bits and device nodes are dropped, and so are extended attributes
// other than user.*; Result.Dropped counts them for a one-line summary.
// With Options.Preserve, which only root can use (selfdock sets it when the
// real uid is 0, for boot), owners, modes, setuid bits, device nodes and
// all extended attributes are kept as in the image.
//
// The image's config (Env, Entrypoint, Cmd, WorkingDir, User) is saved as
// JSON in one file, DIR/.selfdock/image.json (ConfigPath), apart from the
// image's own files; ReadConfig reads it back. A plain rootfs or squashfs
// has no config: an empty one is written, unless the tree already holds a
// valid one (a rootfs re-packed from an earlier import).
package image
