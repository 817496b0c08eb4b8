// Package oci reads an OCI runtime bundle's config.json (runtime-spec
// 1.0-1.2, as Slurm writes it for srun --container) into what a selfdock run
// needs, refusing every field that asks for privilege and naming it.
// It only parses: the file is read by the caller's rights elsewhere.
package oci
