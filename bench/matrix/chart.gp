# The benchmark matrix's chart (called by matrix.py with -e setting
# outfile and the data files d_un, d_wake, d_cpu, d_cont, d_worst; each
# line: "label" value [value2]). Log scales throughout: the figures span
# five orders of magnitude. Blue: this project; red: Debian's pure-Python
# filelock; grey: the bare system calls (floors).

set terminal pngcairo size 1800,1650 font "DejaVu Sans,10"
set output outfile

color(s) = (strstrt(s, "pure") == 1) ? 0xd62728 : ((strstrt(s, "floor") > 0) ? 0x8c8c8c : 0x1f77b4)

set style fill solid 0.85 border -1
set boxwidth 0.7
set grid ytics mytics lc rgb "#dddddd"
set logscale y
set format y "%g"
set xtics rotate by -40 left nomirror font ",9"
set key off

set multiplot title "libfilelock benchmark matrix: this project (blue), pure-Python filelock (red), bare system calls (grey)" font ",13"

set rmargin 12

# Top: uncontended, full width.
set size 1.0, 0.345
set origin 0.0, 0.625
set bmargin 9
set title "Uncontended cost per cycle (µs, median; lower is better)"
set ylabel "µs"
plot d_un using 0:2:(color(strcol(1))):xtic(1) with boxes lc rgb variable

# Middle left: wake-up latency, median (bars) and p99 (points).
set size 0.5, 0.31
set origin 0.0, 0.31
set bmargin 12
set title "Wake-up latency: release -> waiter's acquire returns (µs; bar median, dot p99)"
set ylabel "µs"
set key top left font ",9"
plot d_wake using 0:2:(color(strcol(1))):xtic(1) with boxes lc rgb variable title "median", \
     d_wake using 0:3 with points pt 7 ps 0.9 lc rgb "black" title "p99"
set key off

# Middle right: CPU while waiting.
set origin 0.5, 0.31
set title "CPU burnt while waiting (ms per second of waiting; target <= 2)"
set ylabel "ms/s"
plot d_cpu using 0:2:(color(strcol(1))):xtic(1) with boxes lc rgb variable, \
     2 with lines dt 2 lc rgb "black"

# Bottom left: contention throughput.
set origin 0.0, 0.0
set title "Contention, ".cont_title.": acquisitions per second (higher is better)"
set ylabel "acq/s"
plot d_cont using 0:2:(color(strcol(1))):xtic(1) with boxes lc rgb variable

# Bottom right: worst single wait in that contention.
set origin 0.5, 0.0
set title "Contention: worst single wait (ms; fairness)"
set ylabel "ms"
plot d_worst using 0:2:(color(strcol(1))):xtic(1) with boxes lc rgb variable

unset multiplot
