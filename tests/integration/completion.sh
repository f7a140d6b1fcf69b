#!/bin/bash
# The bash completion offers the commands, their options and the values people type. TAP.
src=$1
n=0
failed=0
# shellcheck source=/dev/null
source "$src"
complete_as() { # expected words... -- the command line being typed
    local want=() 
    while [ "$1" != "--" ]; do want+=("$1"); shift; done
    shift
    COMP_WORDS=("$@")
    COMP_CWORD=$(($# - 1))
    COMPREPLY=()
    _gpool
    n=$((n + 1))
    if [ "${COMPREPLY[*]}" = "${want[*]}" ]; then echo "ok $n - gpool ${*:2}"; else
        failed=$((failed + 1)); echo "not ok $n - gpool ${*:2}: got '${COMPREPLY[*]}', want '${want[*]}'"; fi
}
complete_as submit suspend -- gpool su
complete_as resume -- gpool res
complete_as swapped suspended succeeded -- gpool list --state s
complete_as dev describe -- gpool de
complete_as --token-file -- gpool agent --tok
complete_as sim -- gpool si
complete_as interactive inference -- gpool submit --priority i
complete_as kai-like -- gpool sim replay --policy k
complete_as fgd -- gpool sim fill --policy fg
complete_as pending -- gpool list --state pe
complete_as --gpu --gpus --gpu-memory --gpu-limit -- gpool submit --gpu
complete_as add-member -- gpool projects add
complete_as create -- gpool token c
complete_as init -- gpool server in
complete_as logs -- gpool lo
complete_as nodes -- gpool no
complete_as token top -- gpool to
complete_as --stderr -- gpool logs 12 --st
complete_as cordon -- gpool nodes co
complete_as drain -- gpool nodes dr
complete_as --once -- gpool top --on
complete_as --log-dir --log-limit -- gpool server --log
complete_as usage -- gpool usa
complete_as --since -- gpool usage --si
complete_as project -- gpool usage --by pr
complete_as --walltime -- gpool submit --wa
complete_as --since -- gpool list --si
complete_as --metrics-public -- gpool server --me
complete_as join-token -- gpool nodes jo
complete_as revoke -- gpool nodes join-token rev
complete_as --join-token-file -- gpool agent --join
complete_as --tls-cert --tls-key -- gpool server --tls
echo "1..$n"
[ $failed -eq 0 ]
