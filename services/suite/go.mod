module github.com/algapsa/alga-google/services/suite

go 1.26.8
