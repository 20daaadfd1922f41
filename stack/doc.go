// Package stack reads OpenFaaS stack files (stack.yml) the way faas-cli
// does and turns the functions they define into deploy requests.
//
// Only the deploy-time fields matter to ember; build-time fields (lang,
// handler, build_args, configuration.templates, ...) are accepted and
// ignored, so a stack written for faas-cli up deploys unchanged once its
// images exist.
package stack
