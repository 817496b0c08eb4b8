// Command selfdock is the setuid sandbox: `selfdock run CMD` runs CMD as the
// caller on a read-only view of a root file system, in new namespaces.
//
// This package holds the CLI (one file per subcommand), the privilege gate
// that records who the caller is before anything else, and the mapping of
// errors to exit statuses; only it prints and exits.
package main
