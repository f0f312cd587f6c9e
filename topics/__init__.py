"""What flows through eventfleet: the event envelope, its codec, errors and the topic catalog."""
