"""What the indexer keeps of the chain: raw logs (unique per block hash and log index),
recent block headers for reorg detection, the cursor, and the reorgs it undid."""
