//go:build !sdfallback

package sandbox

const forceFallback = false
