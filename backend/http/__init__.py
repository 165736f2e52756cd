"""What every resource's HTTP side shares: OpenAPI and CORS set-up, ETags, paging headers, the strict DTO."""
