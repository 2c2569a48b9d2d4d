# Goodput vs loss for bench/lossy.sh. Variables (gnuplot -e):
#   datafile  lossy.dat: loss_pct ideal_mbps <one column per tool>
#   outfile   PNG to write
#   rate      link rate in Mbit/s        tools  the tool names, in column order
#   runs      runs per point (median)    rtt    text for the title
if (!exists("datafile")) datafile = "docs/bench/lossy.dat"
if (!exists("outfile")) outfile = "docs/bench/lossy.png"
if (!exists("rate")) rate = 100
if (!exists("runs")) runs = 3
if (!exists("tools")) tools = "sft rsync uftp"
if (!exists("rtt")) rtt = "50 ms"
colors = "#1f77b4 #d62728 #2ca02c #9467bd #ff7f0e"

set terminal pngcairo size 900,560 font "sans,11"
set output outfile
set title sprintf("Goodput through sft-netsim link: %g Mbit/s, RTT %s, loss both ways (median of %d)", rate, rtt, runs)
set xlabel "packet loss each direction (%)"
set ylabel "goodput (Mbit/s)"
set xrange [-1:31]
set yrange [0:rate * 1.05]
set xtics ("0" 0, "1" 1, "5" 5, "10" 10, "30" 30)
set grid
set key top right box opaque
# issue target: >= 90 % of (1-loss) x rate up to 10 %, >= 75 % at 30 %
target(l, ideal) = (l <= 10 ? 0.9 : 0.75) * ideal

plot datafile using 1:2 with lines dt 2 lw 1.5 lc rgb "#888888" title "(1-loss) x rate", \
     datafile using 1:(target($1, $2)) with linespoints dt 3 pt 1 lc rgb "#bbbbbb" title "sft target", \
     for [i=1:words(tools)] datafile using 1:(column(i + 2)) with linespoints lw 2 pt (4 + i) ps 1.3 lc rgb word(colors, i) title word(tools, i)
