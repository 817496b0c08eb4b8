//go:build !sdptrace

package sandbox

const ptracePath = false
