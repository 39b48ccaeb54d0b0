"""Stand-ins for the ERP systems: each speaks its system's published API over real HTTP."""
