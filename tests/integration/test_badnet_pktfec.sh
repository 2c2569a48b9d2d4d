#!/bin/bash
# Cases h and i of test_badnet.sh on their own CTest slot: packet FEC under
# QUIC (lib/pfec) turns on at 30 % loss and rebuilds packets, stays off at
# 5 %, and --packet-fec off sends none.
export SFT_BADNET_PENDING="" SFT_BADNET_CASES="h i"
exec bash "$(dirname "$0")/test_badnet.sh"
