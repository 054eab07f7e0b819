# Checks a demo output file: every line is "<tag> <seq> <tag>/<seq>/<text>",
# each writer's lines appear with seq 1, 2, 3, ... in order, and each writer
# wrote exactly the number of lines it was asked for.
#
#   awk -v expect="c1:40 c2:40 py:40" -f check.awk high_ground.txt
#
# Prints one line per problem (the first 20) and a summary; exits 1 when
# anything is wrong. Written for POSIX awk (Debian's mawk included).
BEGIN {
    text = "its-over-anakin-i-have-the-high-ground"
    n = split(expect, pairs, " ")
    if (n == 0) {
        print "check.awk: no writers given (-v expect=\"tag:count ...\")"
        bad = 1
        exit 1
    }
    for (i = 1; i <= n; i++) {
        split(pairs[i], kv, ":")
        want[kv[1]] = kv[2] + 0
        last[kv[1]] = 0
        order[i] = kv[1]
    }
    problems = 0; torn = 0; lost = 0; lines = 0
}
function problem(msg) {
    problems++
    if (problems <= 20)
        print "   problem: " msg
}
{
    lines++
    ok = (NF == 3 && $2 ~ /^[1-9][0-9]*$/ && $3 == $1 "/" $2 "/" text && ($1 in want))
    if (!ok) {
        torn++
        problem("line " NR " is torn or foreign: \"" substr($0, 1, 100) "\"")
        next
    }
    tag = $1; seq = $2 + 0
    if (seq == last[tag] + 1) {
        last[tag] = seq
    } else if (seq <= last[tag]) {
        problem("line " NR ": " tag " " seq " repeats or goes back (last was " last[tag] ")")
    } else {
        lost += seq - last[tag] - 1
        problem("line " NR ": " tag " jumps from " last[tag] " to " seq " (lines lost)")
        last[tag] = seq
    }
}
END {
    if (bad)
        exit 1
    for (i = 1; i <= n; i++) {
        tag = order[i]
        if (last[tag] < want[tag]) {
            lost += want[tag] - last[tag]
            problem(tag " ends at " last[tag] ", expected " want[tag] " lines")
        } else if (last[tag] > want[tag]) {
            problem(tag " wrote " last[tag] " lines, expected " want[tag])
        }
    }
    if (problems > 20)
        print "   ... and " problems - 20 " more problems"
    printf "   %d lines from %d writers", lines, n
    if (problems == 0) {
        print ", none torn or lost"
        exit 0
    }
    print ": " torn " torn, " lost " lost, " problems " problems"
    exit 1
}
