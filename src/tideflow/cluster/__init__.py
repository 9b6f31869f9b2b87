"""Many nodes on one database: the Keeper (membership, leases), the mutex, and the node's
cluster roles (leader's Dispatcher and WatchDog, the worker's claim loop)."""
