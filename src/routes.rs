//! The route templates the server answers: what the OpenAPI description holds equal to its
//! paths, and what metrics label requests with. Kept low so both can import them.

/// Every route of the API port, as a template.
pub const API: [&str; 16] = [
    "/api/v1/executions",
    "/api/v1/namespaces/{namespace}/executions",
    "/api/v1/namespaces/{namespace}/executions/{name}",
    "/api/v1/pipelines",
    "/api/v1/namespaces/{namespace}/pipelines",
    "/api/v1/namespaces/{namespace}/pipelines/{name}",
    "/api/v1/rejections",
    "/api/v1/namespaces/{namespace}/rejections",
    "/api/v1/modules",
    "/api/v1/retention/plan",
    "/api/v1/insights",
    "/api/v1/namespaces/{namespace}/insights",
    "/api/v1/namespaces/{namespace}/deliveries",
    "/livez",
    "/readyz",
    "/openapi.json",
];

/// The dashboard's routes.
pub const DASHBOARD: [&str; 2] = ["/", "/ui/{file}"];
