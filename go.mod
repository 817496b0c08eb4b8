module github.com/selfdock/selfdock

go 1.26.0

require (
	github.com/BurntSushi/toml v1.6.0
	github.com/CalebQ42/squashfs v1.1.0
	github.com/alecthomas/kong v1.17.0
	github.com/google/go-containerregistry v0.22.1
	github.com/klauspost/compress v1.19.2
	github.com/seccomp/libseccomp-golang v0.11.1
	github.com/syndtr/gocapability v0.0.0-20200815063812-42c35b437635
	github.com/ulikunitz/xz v0.5.17
	golang.org/x/sys v0.49.0
)

require (
	github.com/opencontainers/go-digest v1.0.0 // indirect
	github.com/opencontainers/image-spec v1.1.1 // indirect
	github.com/pierrec/lz4/v4 v4.1.22 // indirect
	github.com/rasky/go-lzo v0.0.0-20200203143853-96a758eda86e // indirect
	github.com/therootcompany/xz v1.0.1 // indirect
	golang.org/x/sync v0.22.0 // indirect
)
