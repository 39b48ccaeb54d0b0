"""The sync engine: keeps each active client's accounts and balances equal to the ERP."""
