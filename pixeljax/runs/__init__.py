"""What a run stores and reads back: the results folder (rows, shards, config), one attack's
result, the victim's record, the attack modes and the population statistics of the rows."""
