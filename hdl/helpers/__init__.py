"""The helper unit's sub-units (hdl/helpers_hw.py HelperUnit is the shared map access path:
descriptor, key read, hash, probe, copy). Each module here declares its signals beside the
states it adds to the unit's FSM, through the unit's shared services (``HelperContext``)."""
