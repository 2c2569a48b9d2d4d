#!/bin/bash
# Case a of test_badnet.sh on its own (it needs most of a CTest slot):
# 30 % loss each way with 200 ms RTT completes byte-identical. It works
# since a session stripes over several connections (the tuning policy adds
# them when RTT x loss is high): each connection's BBR2 backs off alone.
export SFT_BADNET_PENDING="" SFT_BADNET_CASES=a
exec bash "$(dirname "$0")/test_badnet.sh"
