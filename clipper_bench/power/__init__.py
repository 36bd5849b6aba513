"""Power and energy: hardware sources behind one interface, sampled in their own process."""
