// Package compose reads compose files (the Compose Specification, through
// compose-go) into service specs. What a file asks for that ember cannot
// do is an error naming the key, never silently dropped.
package compose
