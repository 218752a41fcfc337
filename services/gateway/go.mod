module github.com/algapsa/alga-google/services/gateway

go 1.26.8
