module github.com/algapsa/alga-google/services/oauth

go 1.26.8
