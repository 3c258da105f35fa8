"""End-to-end OpenPGP (contract, section 4).

openpgp.py      keys, encrypt+sign, decrypt+verify (pgpy)
armor.py        ASCII armor, done here because pgpy's is slow
key_packets.py  a bounded look at a key's packets before pgpy parses it
keyring.py      peers' published keys
seal.py         sealing what the bridge sends, opening what it receives
keys_cli.py     `mailbox-mcp keys`
"""
