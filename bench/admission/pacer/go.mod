module mamori.bench/pacer

go 1.26.8
