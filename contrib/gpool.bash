# Bash completion for gpool: source it, or install it as
# /usr/share/bash-completion/completions/gpool.
_gpool()
{
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
    local cmds="dev server agent region swap submit list describe cancel suspend resume logs projects users token nodes top usage sim help version"
    if [ "$COMP_CWORD" -eq 1 ]; then
        COMPREPLY=($(compgen -W "$cmds" -- "$cur"))
        return
    fi
    case "$prev" in
    --priority) COMPREPLY=($(compgen -W "train build interactive inference" -- "$cur")); return ;;
    --state) COMPREPLY=($(compgen -W "pending running swapped suspended succeeded failed cancelled" -- "$cur")); return ;;
    --role) COMPREPLY=($(compgen -W "admin user agent" -- "$cur")); return ;;
    --by) COMPREPLY=($(compgen -W "project user" -- "$cur")); return ;;
    -o|--output) COMPREPLY=($(compgen -W "json" -- "$cur")); return ;;
    -f|--file|--store|--csv|--plot|--nodes|--pods|--jobs|--projects|--usage|--log-dir|--ca|--tls-cert|--tls-key|--token-file|--join-token-file)
        COMPREPLY=($(compgen -f -- "$cur")); return ;;
    --policy)
        if [ "${COMP_WORDS[2]}" = replay ]; then
            COMPREPLY=($(compgen -W "static slurm-like kai-like gpool all" -- "$cur"))
        else
            COMPREPLY=($(compgen -W "random dotprod clustering packing bestfit fgd gpool offline-ffd all" -- "$cur"))
        fi
        return ;;
    esac
    case "${COMP_WORDS[1]}" in
    submit) COMPREPLY=($(compgen -W "--gpu --gpus --gpu-memory --gpu-limit --cpu --memory --replicas --project --priority --name -e --workdir --walltime --retries -f --" -- "$cur")) ;;
    list) COMPREPLY=($(compgen -W "--state --project --limit --since --until -o" -- "$cur")) ;;
    usage) COMPREPLY=($(compgen -W "--since --until --by -o" -- "$cur")) ;;
    describe|cancel|suspend|resume) COMPREPLY=($(compgen -W "-o" -- "$cur")) ;;
    logs) COMPREPLY=($(compgen -W "--stderr -f --follow" -- "$cur")) ;;
    nodes)
        if [ "$COMP_CWORD" -eq 2 ]; then COMPREPLY=($(compgen -W "cordon drain uncordon revoke join-token -o" -- "$cur"));
        elif [ "${COMP_WORDS[2]}" = join-token ] && [ "$COMP_CWORD" -eq 3 ]; then COMPREPLY=($(compgen -W "create list revoke" -- "$cur"));
        elif [ "${COMP_WORDS[2]}" = join-token ]; then COMPREPLY=($(compgen -W "--expires -o" -- "$cur")); fi ;;
    top) COMPREPLY=($(compgen -W "--once" -- "$cur")) ;;
    projects)
        if [ "$COMP_CWORD" -eq 2 ]; then COMPREPLY=($(compgen -W "set add-member -o" -- "$cur"));
        else COMPREPLY=($(compgen -W "--deserved --limit --weight --parent" -- "$cur")); fi ;;
    users) COMPREPLY=($(compgen -W "add --unix-user --role" -- "$cur")) ;;
    token) COMPREPLY=($(compgen -W "create --user" -- "$cur")) ;;
    dev) COMPREPLY=($(compgen -W "--nodes --gpus --gpu-memory --listen --dir --fresh" -- "$cur")) ;;
    agent) COMPREPLY=($(compgen -W "--server --token-file --join-token-file --ca --name --state-dir --heartbeat --cuda-lib --cgroup-root --address --env --cpus" -- "$cur")) ;;
    swap)
        if [ "$COMP_CWORD" -eq 2 ]; then COMPREPLY=($(compgen -W "out in" -- "$cur"));
        else COMPREPLY=($(compgen -W "--pid --via --regions --host-reserve --timeout -o" -- "$cur")); fi ;;
    region)
        if [ "$COMP_CWORD" -eq 2 ]; then COMPREPLY=($(compgen -W "init set remove show" -- "$cur"));
        else COMPREPLY=($(compgen -W "--dir --gpu --job --memory --share --limit --borrower --context-memory -o" -- "$cur")); fi ;;
    server)
        if [ "$COMP_CWORD" -eq 2 ]; then COMPREPLY=($(compgen -W "init --listen --store --node-timeout --log-dir --log-limit --min-runtime --metrics-public --advertise --idle-busy-pct --idle-window --config --tls-cert --tls-key --routes" -- "$cur"));
        else COMPREPLY=($(compgen -W "--listen --store --node-timeout --log-dir --log-limit --min-runtime --metrics-public --advertise --idle-busy-pct --idle-window --config --tls-cert --tls-key --admin --unix-user" -- "$cur")); fi ;;
    sim)
        if [ "$COMP_CWORD" -eq 2 ]; then COMPREPLY=($(compgen -W "fill replay" -- "$cur"));
        elif [ "${COMP_WORDS[2]}" = fill ]; then COMPREPLY=($(compgen -W "--pods --nodes --policy --seed --seeds --inflate --csv --json --plot --jobs" -- "$cur"));
        else COMPREPLY=($(compgen -W "--jobs --nodes --projects --usage --policy --load --seed --node-fraction --json --csv --plot" -- "$cur")); fi ;;
    esac
}
complete -F _gpool gpool
