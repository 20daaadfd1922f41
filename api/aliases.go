package api

import "github.com/emberfaas/ember/api/wire"

// The wire types live in package wire, so that clients link neither the
// router nor Prometheus. These names remain for internal/bench and
// internal/installtest, which still spell them api.X; new code imports
// wire, and the aliases go once those packages do.
type (
	FunctionDeployment = wire.FunctionDeployment
	FunctionStatus     = wire.FunctionStatus
	SystemStatus       = wire.SystemStatus
)
