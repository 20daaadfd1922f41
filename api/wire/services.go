package wire

import "github.com/emberfaas/ember/function"

// ServicesUp is POST /system/services: the services of one compose file,
// in the order they start.
type ServicesUp struct {
	Services []function.Spec `json:"services"`
}

// Service actions an up reports.
const (
	ServiceCreated   = "created"
	ServiceRecreated = "recreated"
	ServiceUnchanged = "unchanged"
)

// ServiceResult says what an up did to one service.
type ServiceResult struct {
	Name   string `json:"name"`
	Action string `json:"action"`
}

// ServiceStatus is one service in GET /system/services.
type ServiceStatus struct {
	Spec   function.Spec   `json:"spec"`
	Status function.Status `json:"status"`
}
