"""What every resource's data side shares: owner-scoped statements, the owned-resource repository and
service bases, ids, quotas. Knows no resource: each one hands it its table and read Struct."""
