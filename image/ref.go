package image

import "strings"

// normalizeRef spells an image reference the way docker resolves it, so
// that "busybox", "busybox:latest", "docker.io/library/busybox:latest" and
// "index.docker.io/library/busybox:latest" compare equal: a missing tag is
// "latest", a name without a registry is on docker.io, and a one-part name
// there is under library/. It does not validate; go-containerregistry's
// name package would, but it links the net package into selfdock.
func normalizeRef(ref string) string {
	name, digest, _ := strings.Cut(ref, "@")
	tag := ""
	if i := strings.LastIndexByte(name, ':'); i > strings.LastIndexByte(name, '/') {
		name, tag = name[:i], name[i+1:]
	}
	if tag == "" && digest == "" {
		tag = "latest"
	}
	first, _, hasSlash := strings.Cut(name, "/")
	if !hasSlash || (!strings.ContainsAny(first, ".:") && first != "localhost") {
		if !hasSlash {
			name = "library/" + name
		}
		name = "docker.io/" + name
	} else if first == "index.docker.io" {
		name = "docker.io" + strings.TrimPrefix(name, "index.docker.io")
	}
	out := strings.ToLower(name)
	if tag != "" {
		out += ":" + tag
	}
	if digest != "" {
		out += "@" + digest
	}
	return out
}

// tagOf is the tag of a reference, "latest" when it has none.
func tagOf(ref string) string {
	name, _, _ := strings.Cut(ref, "@")
	if i := strings.LastIndexByte(name, ':'); i > strings.LastIndexByte(name, '/') {
		return name[i+1:]
	}
	return "latest"
}
