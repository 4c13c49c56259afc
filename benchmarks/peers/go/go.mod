module coronetbench

go 1.19
