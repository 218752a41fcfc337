module github.com/algapsa/alga-google/services/calendar

go 1.26.8
