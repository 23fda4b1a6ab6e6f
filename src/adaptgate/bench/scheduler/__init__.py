"""When requests leave: arrival schedules, the client event loop, worker processes."""
